-- name: timestamp_contradictions
-- purpose: tasks and results whose status contradicts their timestamps (a final task without
--          ended_at, a COMPLETED task that never started, a waiting task that already ended,
--          timestamps out of order, a COMPLETED result without completed_at). Row-level, fast.
-- params: $session_id (optional), $count_only (optional: 'true' leaves object_id null, for a
--         count by session: the ids, most of the work at 10M tasks, are then not read)
-- columns: kind, session_id, object_id, detail
SELECT 'status_timestamp' AS kind, session_id, object_id, detail FROM (
    SELECT session_id, CASE WHEN coalesce($count_only::VARCHAR, 'false') = 'true' THEN NULL
                            ELSE task_id END AS object_id, CASE
        WHEN v.final AND ended_at IS NULL
            THEN status || ' task has no ended_at'
        WHEN status = 'COMPLETED' AND started_at IS NULL
            THEN 'COMPLETED task never started (no started_at)'
        WHEN v.open AND NOT v.lost AND ended_at IS NOT NULL
            THEN status || ' task already has ended_at'
        WHEN v.waiting AND started_at IS NOT NULL
            THEN status || ' task already has started_at'
        WHEN status = 'PROCESSING' AND started_at IS NULL
            THEN 'PROCESSING task has no started_at'
        WHEN created_at > submitted_at THEN 'submitted_at is before created_at'
        WHEN started_at > processed_at THEN 'processed_at is before started_at'
        WHEN processed_at > ended_at THEN 'ended_at is before processed_at'
        WHEN created_at > ended_at THEN 'ended_at is before created_at'
    END AS detail
    FROM tasks JOIN (SELECT * FROM status_sets WHERE tbl = 'tasks') v USING (status)
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    UNION ALL
    SELECT session_id, CASE WHEN coalesce($count_only::VARCHAR, 'false') = 'true' THEN NULL
                            ELSE result_id END, 'COMPLETED result has no completed_at'
    FROM results
    WHERE status = 'COMPLETED' AND completed_at IS NULL
      AND ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
)
WHERE detail IS NOT NULL
ORDER BY session_id, object_id;
