-- name: stragglers
-- purpose: the slowest tasks relative to their own partition: processing time (started ->
--          processed, or -> snapshot time while still PROCESSING) divided by the partition's
--          median, keeping tasks at least $min_ratio times the median and above its p99.
-- params: $min_ratio (default 3), $limit (default 20), $session_id (optional)
-- columns: task_id, session_id, partition_id, status, processing_s, partition_p50_s,
--          partition_p99_s, ratio, running
WITH p AS (
    SELECT t.task_id, t.session_id, t.partition_id, t.status, t.processed_at IS NULL AS running,
           (epoch_us(coalesce(t.processed_at, t.ended_at, (SELECT snapshot_time FROM bundle_info)))
            - epoch_us(t.started_at)) / 1e6 AS processing_s
    FROM tasks t
    WHERE t.started_at IS NOT NULL AND t.status <> 'RETRIED'
      AND ($session_id::VARCHAR IS NULL OR t.session_id = $session_id::VARCHAR)
), d AS (
    SELECT session_id, partition_id, quantile_cont(processing_s, 0.5) AS p50,
           quantile_cont(processing_s, 0.99) AS p99
    FROM p GROUP BY session_id, partition_id
)
SELECT p.task_id, p.session_id, p.partition_id, p.status, p.processing_s,
       d.p50 AS partition_p50_s, d.p99 AS partition_p99_s,
       p.processing_s / nullif(d.p50, 0) AS ratio, p.running
FROM p JOIN d USING (session_id, partition_id)
WHERE p.processing_s >= coalesce(try_cast($min_ratio::VARCHAR AS DOUBLE), 3.0) * d.p50
  AND p.processing_s >= d.p99
  AND d.p50 > 0
ORDER BY ratio DESC, p.task_id
LIMIT coalesce(try_cast($limit::VARCHAR AS INTEGER), 20);
