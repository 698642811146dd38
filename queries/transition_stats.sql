-- name: transition_stats
-- purpose: statistics of the time between any two task timestamps, per session, over every task
--          having both (armonik-analytics' TimestampsTransition, computed over all rows).
-- params: $from (timestamp name: created, submitted, received, acquired, fetched, started,
--          processed, ended; default created), $to (same names; default ended), $session_id (optional)
-- columns: session_id, from_ts, to_ts, tasks, mean_s, min_s, p50_s, p90_s, p99_s, max_s, stddev_s
WITH t AS (
    SELECT session_id,
           CASE coalesce($from::VARCHAR, 'created')
               WHEN 'created' THEN created_at WHEN 'submitted' THEN submitted_at
               WHEN 'received' THEN received_at WHEN 'acquired' THEN acquired_at
               WHEN 'fetched' THEN fetched_at WHEN 'started' THEN started_at
               WHEN 'processed' THEN processed_at WHEN 'ended' THEN ended_at
               ELSE error('unknown timestamp ' || $from::VARCHAR || '; use created, submitted, received, acquired, fetched, started, processed or ended')
           END AS a,
           CASE coalesce($to::VARCHAR, 'ended')
               WHEN 'created' THEN created_at WHEN 'submitted' THEN submitted_at
               WHEN 'received' THEN received_at WHEN 'acquired' THEN acquired_at
               WHEN 'fetched' THEN fetched_at WHEN 'started' THEN started_at
               WHEN 'processed' THEN processed_at WHEN 'ended' THEN ended_at
               ELSE error('unknown timestamp ' || $to::VARCHAR || '; use created, submitted, received, acquired, fetched, started, processed or ended')
           END AS b
    FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), d AS (
    SELECT session_id, (epoch_us(b) - epoch_us(a)) / 1e6 AS s FROM t
    WHERE a IS NOT NULL AND b IS NOT NULL
)
SELECT session_id, coalesce($from::VARCHAR, 'created') AS from_ts,
       coalesce($to::VARCHAR, 'ended') AS to_ts, count(*) AS tasks, avg(s) AS mean_s,
       min(s) AS min_s, quantile_cont(s, 0.5) AS p50_s, quantile_cont(s, 0.9) AS p90_s,
       quantile_cont(s, 0.99) AS p99_s, max(s) AS max_s, stddev_pop(s) AS stddev_s
FROM d
GROUP BY session_id
ORDER BY session_id;
