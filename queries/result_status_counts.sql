-- name: result_status_counts
-- purpose: how many results of each session are in each status (CREATED = still awaiting data).
-- params: $session_id (optional)
-- columns: session_id, status, results, bytes
SELECT session_id, status, count(*) AS results, sum(size) AS bytes
FROM results
WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
GROUP BY session_id, status
ORDER BY session_id, results DESC, status;
