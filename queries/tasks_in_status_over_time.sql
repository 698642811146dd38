-- name: tasks_in_status_over_time
-- purpose: how many tasks had reached one timestamp but not yet the next, at every instant a count
--          changes (armonik-analytics' TasksInStatusOverTime): e.g. $timestamp=started,
--          $next_timestamp=ended is "tasks processing over time". Without $next_timestamp, the
--          cumulative number of tasks that reached $timestamp.
-- params: $timestamp (default started), $next_timestamp (optional), $session_id (optional)
-- columns: session_id, time, tasks
WITH t AS (
    SELECT session_id,
           CASE coalesce($timestamp::VARCHAR, 'started')
               WHEN 'created' THEN created_at WHEN 'submitted' THEN submitted_at
               WHEN 'received' THEN received_at WHEN 'acquired' THEN acquired_at
               WHEN 'fetched' THEN fetched_at WHEN 'started' THEN started_at
               WHEN 'processed' THEN processed_at WHEN 'ended' THEN ended_at
               ELSE error('unknown timestamp ' || $timestamp::VARCHAR)
           END AS a,
           CASE $next_timestamp::VARCHAR
               WHEN 'created' THEN created_at WHEN 'submitted' THEN submitted_at
               WHEN 'received' THEN received_at WHEN 'acquired' THEN acquired_at
               WHEN 'fetched' THEN fetched_at WHEN 'started' THEN started_at
               WHEN 'processed' THEN processed_at WHEN 'ended' THEN ended_at
               ELSE CASE WHEN $next_timestamp::VARCHAR IS NULL THEN NULL::TIMESTAMPTZ
                         ELSE error('unknown timestamp ' || $next_timestamp::VARCHAR) END
           END AS b
    FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), ev AS (
    SELECT session_id, a AS time, 1 AS delta FROM t WHERE a IS NOT NULL
    UNION ALL
    SELECT session_id, b AS time, -1 AS delta FROM t WHERE a IS NOT NULL AND b IS NOT NULL
), g AS (
    SELECT session_id, time, sum(delta) AS delta FROM ev GROUP BY session_id, time
)
SELECT session_id, time,
       sum(delta) OVER (PARTITION BY session_id ORDER BY time ROWS UNBOUNDED PRECEDING) AS tasks
FROM g
ORDER BY session_id, time;
