-- name: retry_chains
-- purpose: every task that was retried: its attempts in order (grouped by initial_task_id,
--          ordered by len(retry_of_ids)), the final attempt's status, and each attempt's message.
-- params: $session_id (optional)
-- columns: session_id, initial_task_id, attempts, final_task_id, final_status, attempt_ids,
--          attempt_statuses, messages
WITH retried AS (
    -- only chains with a second attempt: found from the retries themselves (few rows)
    SELECT DISTINCT initial_task_id FROM tasks
    WHERE len(retry_of_ids) > 0
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
), a AS (
    SELECT t.session_id, coalesce(nullif(t.initial_task_id, ''), t.task_id) AS initial_task_id,
           t.task_id, coalesce(len(t.retry_of_ids), 0) AS n, t.status,
           coalesce(nullif(trim(t.output_error), ''), nullif(trim(t.status_message), ''), '') AS message
    FROM tasks t
    WHERE coalesce(nullif(t.initial_task_id, ''), t.task_id) IN (SELECT initial_task_id FROM retried)
)
SELECT session_id, initial_task_id, count(*) AS attempts,
       arg_max(task_id, n) AS final_task_id, arg_max(status, n) AS final_status,
       list(task_id ORDER BY n) AS attempt_ids, list(status ORDER BY n) AS attempt_statuses,
       list(message ORDER BY n) AS messages
FROM a
GROUP BY session_id, initial_task_id
ORDER BY session_id, attempts DESC, initial_task_id;
