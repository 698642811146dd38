-- name: diff_sessions
-- purpose: the per-session figures `aksnap diff` compares beyond session_summary,
--          status_counts, phase_percentiles and error_classes, one row per session and
--          metric: makespan (first started_at -> last ended_at), pods used (distinct
--          owner_pod_id), retried tasks and the most attempts of one task, and the graph's
--          shape over first attempts (one row per logical task): tasks per spawn depth
--          (client tasks are depth 0), fan-in (data dependencies per task) and fan-out
--          (subtasks per spawning task) as p50, p90 and max.
-- params: $session_id (optional)
-- columns: session_id, metric, value
WITH t AS (
    SELECT session_id, initial_task_id, owner_pod_id, started_at, ended_at,
           len(retry_of_ids) AS retries, len(data_dependencies) AS fan_in,
           len(parent_task_ids) - 1 AS depth,
           CASE WHEN len(parent_task_ids) > 1 THEN parent_task_ids[-1] END AS parent
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
), depth AS (
    SELECT session_id, depth, count(*) AS tasks
    FROM t
    WHERE retries = 0
    GROUP BY session_id, depth
), children AS (
    SELECT session_id, parent, count(*) AS n
    FROM t
    WHERE retries = 0 AND parent IS NOT NULL
    GROUP BY session_id, parent
), fan_out AS (
    SELECT session_id, quantile_cont(n, [0.5, 0.9]) AS q, max(n) AS m
    FROM children
    GROUP BY session_id
)
SELECT session_id, 'time.makespan_s' AS metric, makespan_s::DOUBLE AS value FROM s
UNION ALL SELECT session_id, 'pods.used', pods_used FROM s
UNION ALL SELECT session_id, 'retries.tasks_retried', tasks_retried FROM s
UNION ALL SELECT session_id, 'retries.max_attempts', max_attempts FROM s
UNION ALL SELECT session_id, 'graph.fan_in.p50', fan_in_q[1] FROM s
UNION ALL SELECT session_id, 'graph.fan_in.p90', fan_in_q[2] FROM s
UNION ALL SELECT session_id, 'graph.fan_in.max', fan_in_max FROM s
UNION ALL SELECT session_id, 'graph.fan_out.p50', coalesce(q[1], 0) FROM s LEFT JOIN fan_out USING (session_id)
UNION ALL SELECT session_id, 'graph.fan_out.p90', coalesce(q[2], 0) FROM s LEFT JOIN fan_out USING (session_id)
UNION ALL SELECT session_id, 'graph.fan_out.max', coalesce(m, 0) FROM s LEFT JOIN fan_out USING (session_id)
UNION ALL SELECT session_id, 'graph.depth.' || depth, tasks FROM depth
ORDER BY session_id, metric;
