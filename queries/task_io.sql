-- name: task_io
-- purpose: the inputs (data dependencies, then the payload) and the expected outputs of one
--          task, in their order, each with its result's status: inputs with their producer
--          (owner_task_id, else created_by, else the client) and completion time, outputs with
--          their current owner. A long list stops after $limit rows per direction.
-- params: $task_id (required), $limit (optional: rows per direction; default all)
-- columns: direction, position, kind, result_id, status, producer, completed_at, owner_task_id,
--          known (the result is in the bundle)
WITH t AS (
    SELECT data_dependencies, payload_id, expected_output_ids
    FROM tasks WHERE task_id = $task_id::VARCHAR LIMIT 1
), ins_raw AS (
    SELECT unnest(data_dependencies) AS result_id,
           unnest(range(1, len(data_dependencies) + 1)) AS position, 'data' AS kind
    FROM t
    UNION ALL
    SELECT payload_id, 9223372036854775807, 'payload' FROM t WHERE coalesce(payload_id, '') <> ''
), ins AS (
    -- a result read twice (or as data and payload) is one input, at its first position
    SELECT result_id, min(position) AS position,
           CASE WHEN bool_or(kind = 'data') AND bool_or(kind = 'payload') THEN 'data+payload'
                ELSE min(kind) END AS kind
    FROM ins_raw GROUP BY result_id
), outs AS (
    SELECT unnest(expected_output_ids) AS result_id,
           unnest(range(1, len(expected_output_ids) + 1)) AS position
    FROM t
), res AS (
    SELECT result_id, any_value(status) AS status, any_value(owner_task_id) AS owner_task_id,
           any_value(created_by) AS created_by, any_value(completed_at) AS completed_at
    FROM results SEMI JOIN (SELECT result_id FROM ins UNION ALL SELECT result_id FROM outs) USING (result_id)
    GROUP BY result_id
), io AS (
    SELECT 'input' AS direction, i.position, i.kind, i.result_id,
           coalesce(r.status, '(not in bundle)') AS status,
           coalesce(nullif(r.owner_task_id, ''), nullif(r.created_by, ''), 'client') AS producer,
           r.completed_at, r.owner_task_id, r.result_id IS NOT NULL AS known
    FROM ins i LEFT JOIN res r USING (result_id)
    UNION ALL
    SELECT 'output', o.position, 'output', o.result_id, coalesce(r.status, '(not in bundle)'),
           coalesce(nullif(r.owner_task_id, ''), nullif(r.created_by, ''), 'client'),
           r.completed_at, coalesce(r.owner_task_id, ''), r.result_id IS NOT NULL
    FROM outs o LEFT JOIN res r USING (result_id)
)
SELECT direction, row_number() OVER (PARTITION BY direction ORDER BY position) AS position, kind,
       result_id, status, producer, completed_at, owner_task_id, known
FROM io
QUALIFY try_cast($limit::VARCHAR AS BIGINT) IS NULL
     OR row_number() OVER (PARTITION BY direction ORDER BY position) <= try_cast($limit::VARCHAR AS BIGINT)
ORDER BY direction, position;
