-- name: ancestors
-- purpose: everything a result depends on, by recursive SQL over the edge views (the same
--          relation as the rustworkx graph's ancestors): result -> task for data dependencies and
--          payloads, task -> result for the producer (owner_task_id, else created_by).
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
    SELECT 'task' AS kind, task_id AS id, status FROM tasks
    UNION ALL
    SELECT 'result', result_id, status FROM results
)
SELECT u.kind, u.id, n.status
FROM up u JOIN nodes n USING (kind, id)
WHERE NOT (u.kind = 'result' AND u.id = $result_id::VARCHAR)
ORDER BY kind, id;
