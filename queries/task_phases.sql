-- name: task_phases
-- purpose: the phases of each task (aksnap.bundle.TASK_PHASES), in seconds: waiting for inputs = submitted - created,
--          queued = acquired - submitted, dispatch = fetched - acquired (inputs downloaded),
--          fetching = started - fetched, processing = processed - started,
--          finishing = ended - processed, total = ended - created.
-- params: $session_id (optional), $status (optional: only tasks in this status)
-- columns: task_id, session_id, partition_id, status, waiting, queued, dispatch, fetching,
--          processing, finishing, total
SELECT task_id, session_id, partition_id, status, waiting, queued, dispatch, fetching,
       processing, finishing, total
FROM task_phases
WHERE ($session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR)
  AND ($status::VARCHAR IS NULL OR status = $status::VARCHAR)
ORDER BY session_id, created_at, task_id;
