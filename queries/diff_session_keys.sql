-- name: diff_session_keys
-- purpose: what `aksnap diff` matches sessions of two bundles on: the application (name,
--          version, namespace: the session's default task options, else its tasks' most
--          common), its partitions (the session's partition_ids, else its tasks'), and its task
--          count, one row per session.
-- params: $session_id (optional)
-- columns: session_id, application_name, application_version, application_namespace,
--          partitions, tasks, first_created
WITH t AS (
    SELECT session_id, count(*) AS tasks, min(created_at) AS first_created,
           mode(application_name) AS app, mode(application_version) AS ver,
           mode(application_namespace) AS ns
    FROM tasks
    GROUP BY session_id
), tp AS (
    SELECT session_id, list_sort(list(partition_id)) AS parts
    FROM (SELECT DISTINCT session_id, partition_id FROM tasks WHERE partition_id IS NOT NULL)
    GROUP BY session_id
), s AS (
    SELECT session_id, options.application_name AS app, options.application_version AS ver,
           options.application_namespace AS ns,
           CASE WHEN len(partition_ids) > 0 THEN list_sort(partition_ids) END AS parts
    FROM sessions
)
SELECT coalesce(s.session_id, t.session_id) AS session_id,
       coalesce(nullif(s.app, ''), t.app, '') AS application_name,
       coalesce(nullif(s.ver, ''), t.ver, '') AS application_version,
       coalesce(nullif(s.ns, ''), t.ns, '') AS application_namespace,
       coalesce(s.parts, tp.parts, []) AS partitions,
       coalesce(t.tasks, 0) AS tasks,
       t.first_created
FROM s FULL JOIN t ON s.session_id = t.session_id
LEFT JOIN tp ON tp.session_id = t.session_id
WHERE $session_id::VARCHAR IS NULL OR coalesce(s.session_id, t.session_id) = $session_id::VARCHAR
ORDER BY first_created NULLS LAST, session_id;
