-- name: throughput
-- purpose: tasks ending per time bucket, per session: how many completed and how many ended in
--          any other final status, and the completion rate in tasks per second.
-- params: $bucket_seconds (bucket width; default 1), $session_id (optional)
-- columns: session_id, bucket_start, completed, failed, tasks_per_s
WITH e AS (
    SELECT session_id, status, ended_at,
           coalesce(try_cast($bucket_seconds::VARCHAR AS DOUBLE), 1.0) AS w
    FROM tasks
    WHERE ended_at IS NOT NULL
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
), s AS (
    SELECT session_id, min(ended_at) AS t0 FROM e GROUP BY session_id
)
SELECT e.session_id,
       s.t0 + to_microseconds(CAST(floor((epoch_us(e.ended_at) - epoch_us(s.t0)) / (e.w * 1e6)) * e.w * 1e6 AS BIGINT)) AS bucket_start,
       count(*) FILTER (WHERE e.status = 'COMPLETED') AS completed,
       count(*) FILTER (WHERE e.status <> 'COMPLETED') AS failed,
       count(*) FILTER (WHERE e.status = 'COMPLETED') / any_value(e.w) AS tasks_per_s
FROM e JOIN s USING (session_id)
GROUP BY ALL
ORDER BY e.session_id, bucket_start;
