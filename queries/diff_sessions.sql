-- name: diff_sessions
-- purpose: the per-session figures `aksnap diff` compares beyond session_summary,
--          status_counts, phase_percentiles and error_classes, one row per session and
--          metric: makespan (first started_at -> last ended_at), pods used (distinct
--          owner_pod_id), retried tasks and the most attempts of one task, and the graph's
--          shape over first attempts (one row per logical task): fan-in (data dependencies
--          per task) as p50, p90 and max. Tasks per spawn depth and fan-out (subtasks per
--          spawning task) come from the graph's spawn tree (aksnap.analyzer.diff), which diff
--          builds anyway, not from parent_task_ids, the largest column of a bundle.
-- params: $session_id (optional)
-- columns: session_id, metric, value
WITH t AS (
    SELECT session_id, initial_task_id, owner_pod_id, started_at, ended_at,
           len(retry_of_ids) AS retries, len(data_dependencies) AS fan_in
    FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), s AS (
    SELECT session_id,
           (epoch_us(max(ended_at)) - epoch_us(min(started_at))) / 1e6 AS makespan_s,
           count(DISTINCT nullif(owner_pod_id, '')) AS pods_used,
           count(DISTINCT initial_task_id) FILTER (WHERE retries > 0) AS tasks_retried,
           max(retries) + 1 AS max_attempts,
           quantile_cont(fan_in, [0.5, 0.9]) FILTER (WHERE retries = 0) AS fan_in_q,
           max(fan_in) FILTER (WHERE retries = 0) AS fan_in_max
    FROM t
    GROUP BY session_id
)
SELECT session_id, 'time.makespan_s' AS metric, makespan_s::DOUBLE AS value FROM s
UNION ALL SELECT session_id, 'pods.used', pods_used FROM s
UNION ALL SELECT session_id, 'retries.tasks_retried', tasks_retried FROM s
UNION ALL SELECT session_id, 'retries.max_attempts', max_attempts FROM s
UNION ALL SELECT session_id, 'graph.fan_in.p50', fan_in_q[1] FROM s
UNION ALL SELECT session_id, 'graph.fan_in.p90', fan_in_q[2] FROM s
UNION ALL SELECT session_id, 'graph.fan_in.max', fan_in_max FROM s
ORDER BY session_id, metric;
