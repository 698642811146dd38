-- name: status_counts
-- purpose: how many tasks of each session are in each status, and their share of the session.
-- params: $session_id (optional: one session; null = all)
-- columns: session_id, status, tasks, share
SELECT session_id, status, count(*) AS tasks,
       round(count(*) / sum(count(*)) OVER (PARTITION BY session_id), 4) AS share
FROM tasks
WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
GROUP BY session_id, status
ORDER BY session_id, tasks DESC, status;
