-- name: retry_chains
-- purpose: every task that was retried: its attempts in order (grouped by initial_task_id,
--          ordered by len(retry_of_ids)), the final attempt's status, and each attempt's message.
-- params: $session_id (optional)
-- columns: session_id, initial_task_id, attempts, final_task_id, final_status, attempt_ids,
--          attempt_statuses, messages
WITH a AS (
    SELECT session_id, coalesce(nullif(initial_task_id, ''), task_id) AS initial_task_id, task_id,
           coalesce(len(retry_of_ids), 0) AS n, status,
           coalesce(nullif(trim(output_error), ''), nullif(trim(status_message), ''), '') AS message
    FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
)
SELECT session_id, initial_task_id, count(*) AS attempts,
       arg_max(task_id, n) AS final_task_id, arg_max(status, n) AS final_status,
       list(task_id ORDER BY n) AS attempt_ids, list(status ORDER BY n) AS attempt_statuses,
       list(message ORDER BY n) AS messages
FROM a
GROUP BY session_id, initial_task_id
HAVING count(*) > 1
ORDER BY session_id, attempts DESC, initial_task_id;
