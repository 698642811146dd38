-- name: frontier
-- purpose: the blocking frontier of a result by recursive SQL: among the result and everything
--          upstream of it, the incomplete nodes (not COMPLETED; RETRIED attempts excluded) whose
--          own inputs are all COMPLETED. This is what holds the result right now.
-- params: $result_id (required)
-- columns: kind, id, status
WITH RECURSIVE edges AS MATERIALIZED (
    SELECT 'result' AS src_kind, d.result_id AS src, 'task' AS dst_kind, d.task_id AS dst
    FROM task_dependencies d SEMI JOIN results r ON r.result_id = d.result_id
    UNION ALL
    SELECT 'task', p.task_id, 'result', p.result_id
    FROM result_producers p SEMI JOIN tasks t ON t.task_id = p.task_id
), up(kind, id) AS (
    SELECT 'result', $result_id::VARCHAR
    UNION
    SELECT e.src_kind, e.src FROM edges e JOIN up ON e.dst_kind = up.kind AND e.dst = up.id
), nodes AS (
    SELECT 'task' AS kind, task_id AS id, status, status = 'COMPLETED' AS complete FROM tasks
    UNION ALL
    SELECT 'result', result_id, status, status = 'COMPLETED' FROM results
)
SELECT u.kind, u.id, n.status
FROM up u JOIN nodes n USING (kind, id)
WHERE NOT n.complete AND n.status <> 'RETRIED'
  AND NOT EXISTS (
      SELECT 1 FROM edges e JOIN nodes p ON p.kind = e.src_kind AND p.id = e.src
      WHERE e.dst_kind = u.kind AND e.dst = u.id AND NOT p.complete)
ORDER BY u.kind, u.id;
