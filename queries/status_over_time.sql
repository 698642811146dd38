-- name: status_over_time
-- purpose: how many tasks were in each lifecycle status at regular instants, rebuilt from the
--          timestamps: PENDING [created, submitted), SUBMITTED [submitted, acquired),
--          DISPATCHED [acquired, started), PROCESSING [started, ended), then the final status.
--          A task still in a non-final status stays in it up to the snapshot time.
-- params: $buckets (number of instants; default 20), $session_id (optional)
-- columns: session_id, time, status, tasks
WITH t AS (
    SELECT session_id, status, created_at, submitted_at, acquired_at, started_at, ended_at
    FROM tasks
    WHERE created_at IS NOT NULL
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
), span AS (
    SELECT session_id, min(created_at) AS t0,
           greatest(max(ended_at), max(created_at)) AS t1
    FROM t GROUP BY session_id
), grid AS (
    SELECT session_id,
           t0 + to_microseconds(CAST((epoch_us(t1) - epoch_us(t0)) * i
                / greatest(coalesce(try_cast($buckets::VARCHAR AS INTEGER), 20), 1) AS BIGINT)) AS time
    FROM span, range(0, greatest(coalesce(try_cast($buckets::VARCHAR AS INTEGER), 20), 1) + 1) r(i)
), st AS (
    SELECT g.session_id, g.time,
           CASE
               WHEN t.ended_at IS NOT NULL AND g.time >= t.ended_at THEN t.status
               WHEN t.started_at IS NOT NULL AND g.time >= t.started_at THEN 'PROCESSING'
               WHEN t.acquired_at IS NOT NULL AND g.time >= t.acquired_at THEN 'DISPATCHED'
               WHEN t.submitted_at IS NOT NULL AND g.time >= t.submitted_at THEN 'SUBMITTED'
               ELSE 'PENDING'
           END AS status
    FROM grid g JOIN t ON t.session_id = g.session_id AND t.created_at <= g.time
)
SELECT session_id, time, status, count(*) AS tasks
FROM st
GROUP BY ALL
ORDER BY session_id, time, status;
