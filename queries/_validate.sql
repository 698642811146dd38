-- name: _validate
-- purpose: what the reader refuses before any query: statuses outside ArmoniK's vocabulary and
--   nulls in the columns every open checks (the column catalogue's required columns: each
--   row's id, session and status; the analyzer would otherwise drop edges or statuses). One
--   row per check; n > 0 is a problem, example shows one offending value.
-- params: $task_statuses, $result_statuses, $session_statuses (lists of status names);
--   $task_required, $result_required, $session_required, $partition_required (lists of
--   column names: aksnap.columns.REQUIRED)
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
SELECT 'tasks', col, 'null', n, NULL FROM (
    UNPIVOT (SELECT count(*) - count(COLUMNS(lambda c: list_contains($task_required, c))) FROM tasks)
    ON COLUMNS(*) INTO NAME col VALUE n)
UNION ALL
SELECT 'results', col, 'null', n, NULL FROM (
    UNPIVOT (SELECT count(*) - count(COLUMNS(lambda c: list_contains($result_required, c))) FROM results)
    ON COLUMNS(*) INTO NAME col VALUE n)
UNION ALL
SELECT 'sessions', col, 'null', n, NULL FROM (
    UNPIVOT (SELECT count(*) - count(COLUMNS(lambda c: list_contains($session_required, c))) FROM sessions)
    ON COLUMNS(*) INTO NAME col VALUE n)
UNION ALL
SELECT 'partitions', col, 'null', n, NULL FROM (
    UNPIVOT (SELECT count(*) - count(COLUMNS(lambda c: list_contains($partition_required, c))) FROM partitions)
    ON COLUMNS(*) INTO NAME col VALUE n)
