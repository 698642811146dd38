-- name: session_summary
-- purpose: one row per session: task counts by the status sets of aksnap.columns (completed =
--          success, failed = ERROR or TIMEOUT, retried attempts, cancelled, running = open: not
--          final; the five add up to tasks), wall time and throughput,
--          over every task row at once (armonik-analytics' TotalElapsedTime and AvgThroughput):
--          elapsed = first created_at -> last ended_at or completed_at; avg_throughput = ended
--          tasks / elapsed; completed_throughput = COMPLETED tasks / elapsed.
-- params: $session_id (optional)
-- columns: session_id, session_status, tasks, completed, failed, retried, cancelled, running, results,
--          results_completed, first_created, last_ended, elapsed_s, avg_throughput,
--          completed_throughput
WITH t AS (
    SELECT session_id,
           count(*) AS tasks,
           count(*) FILTER (WHERE v.success) AS completed,
           count(*) FILTER (WHERE v.failed) AS failed,
           count(*) FILTER (WHERE v.retried) AS retried,
           count(*) FILTER (WHERE v.cancelled) AS cancelled,
           count(*) FILTER (WHERE v.open) AS running,
           count(ended_at) AS ended,
           min(created_at) AS first_created,
           max(ended_at) AS last_ended
    FROM tasks JOIN (SELECT * FROM status_sets WHERE tbl = 'tasks') v USING (status)
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    GROUP BY session_id
), r AS (
    SELECT session_id, count(*) AS results,
           count(*) FILTER (WHERE status = 'COMPLETED') AS results_completed,
           max(completed_at) AS last_completed
    FROM results
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    GROUP BY session_id
), w AS (
    -- The one definition of a session's wall time (analyze and critical-path alike): from its
    -- first task's creation to the last moment anything in it ended (a task's ended_at or a
    -- result's completed_at).
    SELECT t.session_id, greatest(t.last_ended, r.last_completed) AS last_ended
    FROM t LEFT JOIN r USING (session_id)
)
SELECT t.session_id, s.status AS session_status, t.tasks, t.completed, t.failed, t.retried,
       t.cancelled, t.running, coalesce(r.results, 0) AS results,
       coalesce(r.results_completed, 0) AS results_completed,
       t.first_created, w.last_ended,
       (epoch_us(w.last_ended) - epoch_us(t.first_created)) / 1e6 AS elapsed_s,
       t.ended / nullif((epoch_us(w.last_ended) - epoch_us(t.first_created)) / 1e6, 0)
           AS avg_throughput,
       t.completed / nullif((epoch_us(w.last_ended) - epoch_us(t.first_created)) / 1e6, 0)
           AS completed_throughput
FROM t
JOIN w USING (session_id)
LEFT JOIN r USING (session_id)
LEFT JOIN sessions s USING (session_id)
ORDER BY t.first_created NULLS LAST, t.session_id;
