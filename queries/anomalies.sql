-- name: anomalies
-- purpose: contradictions in the bundle that `aksnap check` reports (cycles come from the graph):
--          duplicate ids, results no task will produce, references to ids not in the bundle,
--          tasks waiting on aborted results, statuses contradicting timestamps.
-- params: $session_id (optional)
-- columns: kind, session_id, object_id, detail
WITH t AS (
    SELECT * FROM tasks WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), r AS (
    SELECT * FROM results WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
), a AS (
    SELECT 'duplicate_id' AS kind, any_value(session_id) AS session_id, task_id AS object_id,
           'task id appears ' || count(*) || ' times' AS detail
    FROM t GROUP BY task_id HAVING count(*) > 1
    UNION ALL
    SELECT 'duplicate_id', any_value(session_id), result_id,
           'result id appears ' || count(*) || ' times'
    FROM r GROUP BY result_id HAVING count(*) > 1
    UNION ALL
    SELECT 'result_without_producer', r.session_id, r.result_id,
           'CREATED result with no owner task, no creating task and no task expecting it: only the client can complete it'
    FROM r
    WHERE r.status = 'CREATED' AND coalesce(r.owner_task_id, '') = '' AND coalesce(r.created_by, '') = ''
      AND r.result_id NOT IN (SELECT result_id FROM task_outputs WHERE result_id IS NOT NULL)
    UNION ALL
    SELECT 'missing_reference', r.session_id, r.result_id,
           'owner task ' || r.owner_task_id || ' is not in the bundle'
    FROM r
    WHERE coalesce(r.owner_task_id, '') <> '' AND r.owner_task_id NOT IN (SELECT task_id FROM tasks)
    UNION ALL
    SELECT 'missing_reference', d.session_id, d.task_id,
           d.kind || ' dependency ' || d.result_id || ' is not in the bundle'
    FROM task_dependencies d
    WHERE ($session_id::VARCHAR IS NULL OR d.session_id = $session_id::VARCHAR)
      AND d.result_id NOT IN (SELECT result_id FROM results)
    UNION ALL
    SELECT 'missing_reference', p.session_id, p.task_id,
           'parent task ' || p.parent_task_id || ' is not in the bundle'
    FROM task_parents p
    WHERE ($session_id::VARCHAR IS NULL OR p.session_id = $session_id::VARCHAR)
      AND p.parent_task_id NOT IN (SELECT task_id FROM tasks)
    UNION ALL
    SELECT 'missing_reference', t.session_id, t.task_id,
           'previous attempt ' || t.retry_of_ids[-1] || ' is not in the bundle'
    FROM t
    WHERE len(t.retry_of_ids) > 0 AND t.retry_of_ids[-1] NOT IN (SELECT task_id FROM tasks)
    UNION ALL
    SELECT 'missing_reference', t.session_id, t.task_id,
           'session ' || t.session_id || ' is not in the sessions table'
    FROM t
    WHERE (SELECT count(*) FROM sessions) > 0 AND t.session_id NOT IN (SELECT session_id FROM sessions)
    UNION ALL
    SELECT 'waiting_on_aborted', d.session_id, d.task_id,
           'task is ' || any_value(t.status) || ' but its ' || string_agg(d.kind || ' ' || d.result_id || ' (' || res.status || ')', ', ' ORDER BY d.result_id)
               || ' will never complete'
    FROM task_dependencies d
    JOIN t ON t.task_id = d.task_id
    JOIN results res ON res.result_id = d.result_id
    WHERE t.status IN ('CREATING', 'PENDING', 'SUBMITTED', 'PAUSED')
      AND res.status IN ('ABORTED', 'DELETED', 'NOTFOUND')
    GROUP BY d.session_id, d.task_id
    UNION ALL
    SELECT 'status_timestamp', session_id, task_id, detail
    FROM (
        SELECT session_id, task_id, CASE
            WHEN status IN ('COMPLETED', 'ERROR', 'TIMEOUT', 'CANCELLED', 'RETRIED') AND ended_at IS NULL
                THEN status || ' task has no ended_at'
            WHEN status = 'COMPLETED' AND started_at IS NULL
                THEN 'COMPLETED task never started (no started_at)'
            WHEN status IN ('CREATING', 'PENDING', 'SUBMITTED', 'DISPATCHED', 'PROCESSING') AND ended_at IS NOT NULL
                THEN status || ' task already has ended_at'
            WHEN status IN ('CREATING', 'PENDING', 'SUBMITTED') AND started_at IS NOT NULL
                THEN status || ' task already has started_at'
            WHEN status = 'PROCESSING' AND started_at IS NULL
                THEN 'PROCESSING task has no started_at'
            WHEN created_at > submitted_at THEN 'submitted_at is before created_at'
            WHEN started_at > processed_at THEN 'processed_at is before started_at'
            WHEN processed_at > ended_at THEN 'ended_at is before processed_at'
            WHEN created_at > ended_at THEN 'ended_at is before created_at'
        END AS detail
        FROM t
    ) WHERE detail IS NOT NULL
    UNION ALL
    SELECT 'status_timestamp', session_id, result_id, 'COMPLETED result has no completed_at'
    FROM r WHERE status = 'COMPLETED' AND completed_at IS NULL
    UNION ALL
    SELECT 'status_timestamp', r.session_id, r.result_id,
           'result is still CREATED although its owner ' || r.owner_task_id || ' is COMPLETED'
    FROM r JOIN tasks o ON o.task_id = r.owner_task_id
    WHERE r.status = 'CREATED' AND o.status = 'COMPLETED'
)
SELECT kind, session_id, object_id, detail FROM a
ORDER BY kind, session_id, object_id, detail;
