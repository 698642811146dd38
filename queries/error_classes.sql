-- name: error_classes
-- purpose: the messages of the failed attempts and of the tasks that will never deliver (the
--          status_sets retried and lost sets: RETRIED, ERROR, TIMEOUT, CANCELLED, CANCELLING)
--          grouped into classes: ids (GUIDs, hex strings) and numbers are
--          replaced by placeholders so that "task 3f2a... failed" counts once. Propagated
--          errors (ERROR without started_at) are told apart from failures that ran.
-- params: $session_id (optional)
-- columns: session_id, status, propagated, error_class, tasks, example_task_id, example_message
WITH f AS (
    SELECT session_id, task_id, status, started_at IS NULL AND status = 'ERROR' AS propagated,
           coalesce(nullif(trim(output_error), ''), nullif(trim(status_message), ''), '(no message)') AS message
    FROM tasks
    WHERE status IN (SELECT status FROM status_sets WHERE tbl = 'tasks' AND (retried OR lost))
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
), c AS (
    SELECT *, regexp_replace(regexp_replace(regexp_replace(left(message, 300),
                  '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(###[0-9]+)?', '<id>', 'g'),
                  '\b[0-9a-fA-F]{16,}\b', '<hex>', 'g'),
                  '[0-9]+(\.[0-9]+)?', '<n>', 'g') AS error_class
    FROM f
)
SELECT session_id, status, propagated, error_class, count(*) AS tasks,
       min(task_id) AS example_task_id, arg_min(message, task_id) AS example_message
FROM c
GROUP BY session_id, status, propagated, error_class
ORDER BY session_id, propagated, tasks DESC, error_class;
