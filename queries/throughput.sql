-- name: throughput
-- purpose: tasks ending per time bucket, per session, by the final sets of aksnap.columns:
--          completed (success), failed (ERROR, TIMEOUT), retried (failed attempts that were
--          retried), cancelled; and the completion rate in tasks per second.
-- params: $bucket_seconds (bucket width; default 1), $session_id (optional)
-- columns: session_id, bucket_start, completed, failed, retried, cancelled, tasks_per_s
WITH e AS (
    SELECT session_id, ended_at, v.success, v.failed, v.retried, v.cancelled,
           coalesce(try_cast($bucket_seconds::VARCHAR AS DOUBLE), 1.0) AS w
    FROM tasks JOIN (SELECT * FROM status_sets WHERE tbl = 'tasks') v USING (status)
    WHERE ended_at IS NOT NULL
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
), s AS (
    SELECT session_id, min(ended_at) AS t0 FROM e GROUP BY session_id
)
SELECT e.session_id,
       s.t0 + to_microseconds(CAST(floor((epoch_us(e.ended_at) - epoch_us(s.t0)) / (e.w * 1e6)) * e.w * 1e6 AS BIGINT)) AS bucket_start,
       count(*) FILTER (WHERE e.success) AS completed,
       count(*) FILTER (WHERE e.failed) AS failed,
       count(*) FILTER (WHERE e.retried) AS retried,
       count(*) FILTER (WHERE e.cancelled) AS cancelled,
       count(*) FILTER (WHERE e.success) / any_value(e.w) AS tasks_per_s
FROM e JOIN s USING (session_id)
GROUP BY ALL
ORDER BY e.session_id, bucket_start;
