-- name: phase_percentiles
-- purpose: the distribution of every task phase per session and partition (over all task rows,
--          not a mean of page means): count, mean, p50, p90, p99, max, in seconds.
-- params: $session_id (optional)
-- columns: session_id, partition_id, phase, tasks, total_s, mean_s, p50_s, p90_s, p99_s, max_s
WITH p AS (
    SELECT session_id, partition_id, created_at, waiting, queued, dispatch, fetching, processing,
           finishing, total
    FROM task_phases
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), u AS (
    UNPIVOT p ON waiting, queued, dispatch, fetching, processing, finishing, total
    INTO NAME phase VALUE seconds
)
SELECT session_id, partition_id, phase, count(seconds) AS tasks, sum(seconds) AS total_s,
       avg(seconds) AS mean_s,
       quantile_cont(seconds, 0.5) AS p50_s, quantile_cont(seconds, 0.9) AS p90_s,
       quantile_cont(seconds, 0.99) AS p99_s, max(seconds) AS max_s
FROM u
GROUP BY session_id, partition_id, phase
ORDER BY session_id, partition_id,
         list_position(['waiting', 'queued', 'dispatch', 'fetching', 'processing', 'finishing',
                        'total'], phase);
