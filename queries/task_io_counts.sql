-- name: task_io_counts
-- purpose: how many inputs (data dependencies and payload, each result once) and expected
--          outputs one task has, by the status of the result (for tasks with long lists).
-- params: $task_id (required)
-- columns: direction, status, results
WITH t AS (
    SELECT data_dependencies, payload_id, expected_output_ids
    FROM tasks WHERE task_id = $task_id::VARCHAR LIMIT 1
), io AS (
    SELECT DISTINCT 'input' AS direction, result_id
    FROM (SELECT unnest(data_dependencies) AS result_id FROM t
          UNION ALL SELECT payload_id FROM t WHERE coalesce(payload_id, '') <> '')
    UNION ALL
    SELECT 'output', unnest(expected_output_ids) FROM t
), res AS (
    SELECT result_id, any_value(status) AS status
    FROM results SEMI JOIN io USING (result_id) GROUP BY result_id
)
SELECT direction, coalesce(r.status, '(not in bundle)') AS status, count(*) AS results
FROM io LEFT JOIN res r USING (result_id)
GROUP BY ALL
ORDER BY direction, results DESC, status;
