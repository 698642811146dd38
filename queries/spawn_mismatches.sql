-- name: spawn_mismatches
-- purpose: tasks whose created_by (the submitting task, or for a retry the previous attempt)
--          disagrees with parent_task_ids[-1] (or, for a retry, retry_of_ids[-1]). The graph
--          takes spawn parents and previous attempts from created_by; this query proves the
--          two agree. Reads the full ancestry lists: slow on very large bundles.
-- params: $session_id (optional)
-- columns: kind, session_id, object_id, detail
SELECT 'spawn_mismatch' AS kind, session_id, task_id AS object_id,
       CASE WHEN is_retry
            THEN 'created_by ' || coalesce(nullif(created_by, ''), '(client)') || ' but the previous attempt is ' || coalesce(retry_of_ids[-1], '(none)')
            ELSE 'created_by ' || coalesce(nullif(created_by, ''), '(client)') || ' but the direct parent is ' || coalesce(parent_task_ids[-1], '(none)')
       END AS detail
FROM (
    SELECT *, coalesce(initial_task_id, '') NOT IN ('', task_id) AS is_retry FROM tasks
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
)
WHERE CASE WHEN is_retry THEN coalesce(created_by, '') IS DISTINCT FROM coalesce(retry_of_ids[-1], '')
           ELSE coalesce(nullif(created_by, ''), session_id) IS DISTINCT FROM coalesce(parent_task_ids[-1], session_id)
      END
ORDER BY session_id, task_id;
