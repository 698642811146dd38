-- name: session_summary
-- purpose: one row per session: task counts, elapsed (wall) time and average throughput, computed
--          over every task row at once (armonik-analytics' TotalElapsedTime and AvgThroughput:
--          elapsed = last ended_at - first created_at; throughput = tasks / elapsed).
-- params: $session_id (optional)
-- columns: session_id, session_status, tasks, completed, failed, retried, running, results,
--          results_completed, first_created, last_ended, elapsed_s, avg_throughput,
--          completed_throughput
WITH t AS (
    SELECT session_id,
           count(*) AS tasks,
           count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
           count(*) FILTER (WHERE status IN ('ERROR', 'TIMEOUT', 'CANCELLED')) AS failed,
           count(*) FILTER (WHERE status = 'RETRIED') AS retried,
           count(*) FILTER (WHERE status NOT IN ('COMPLETED', 'ERROR', 'TIMEOUT', 'CANCELLED',
                                                 'RETRIED', 'PROCESSED')) AS running,
           min(created_at) AS first_created,
           max(ended_at) AS last_ended
    FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    GROUP BY session_id
), r AS (
    SELECT session_id, count(*) AS results,
           count(*) FILTER (WHERE status = 'COMPLETED') AS results_completed
    FROM results
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    GROUP BY session_id
)
SELECT t.session_id, s.status AS session_status, t.tasks, t.completed, t.failed, t.retried,
       t.running, coalesce(r.results, 0) AS results,
       coalesce(r.results_completed, 0) AS results_completed,
       t.first_created, t.last_ended,
       (epoch_us(t.last_ended) - epoch_us(t.first_created)) / 1e6 AS elapsed_s,
       t.tasks / nullif((epoch_us(t.last_ended) - epoch_us(t.first_created)) / 1e6, 0)
           AS avg_throughput,
       t.completed / nullif((epoch_us(t.last_ended) - epoch_us(t.first_created)) / 1e6, 0)
           AS completed_throughput
FROM t
LEFT JOIN r USING (session_id)
LEFT JOIN sessions s USING (session_id)
ORDER BY t.first_created NULLS LAST, t.session_id;
