-- name: _validate
-- purpose: what the reader refuses before any query: statuses outside ArmoniK's vocabulary and
--   nulls in the columns the format never leaves null (the analyzer would otherwise drop edges
--   or statuses). One row per check; n > 0 is a problem, example shows one offending value.
-- params: $task_statuses, $result_statuses, $session_statuses (lists of status names)
-- columns: tbl, col, problem, n, example
SELECT 'tasks' AS tbl, 'status' AS col, 'unknown' AS problem, count(*) AS n, any_value(status) AS example
FROM tasks WHERE NOT list_contains($task_statuses, status)
UNION ALL
SELECT 'results', 'status', 'unknown', count(*), any_value(status)
FROM results WHERE NOT list_contains($result_statuses, status)
UNION ALL
SELECT 'sessions', 'status', 'unknown', count(*), any_value(status)
FROM sessions WHERE NOT list_contains($session_statuses, status)
UNION ALL
SELECT 'tasks', 'status', 'null', count(*) FILTER (WHERE status IS NULL), NULL FROM tasks
UNION ALL
SELECT 'tasks', 'task_id', 'null', count(*) FILTER (WHERE task_id IS NULL), NULL FROM tasks
UNION ALL
SELECT 'tasks', 'session_id', 'null', count(*) FILTER (WHERE session_id IS NULL), NULL FROM tasks
UNION ALL
SELECT 'results', 'status', 'null', count(*) FILTER (WHERE status IS NULL), NULL FROM results
UNION ALL
SELECT 'results', 'result_id', 'null', count(*) FILTER (WHERE result_id IS NULL), NULL FROM results
UNION ALL
SELECT 'results', 'session_id', 'null', count(*) FILTER (WHERE session_id IS NULL), NULL FROM results
UNION ALL
SELECT 'sessions', 'status', 'null', count(*) FILTER (WHERE status IS NULL), NULL FROM sessions
UNION ALL
SELECT 'sessions', 'session_id', 'null', count(*) FILTER (WHERE session_id IS NULL), NULL FROM sessions
