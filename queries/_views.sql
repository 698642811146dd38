-- name: _views
-- purpose: the edge views every analysis and ad-hoc query can use; created by Snapshot.open
--          over the four base views (sessions, tasks, results, partitions).
-- params: none
-- views:
--   task_dependencies(task_id, session_id, result_id, kind)   kind = 'data' | 'payload'
--   task_outputs(task_id, session_id, result_id)               expected_output_ids, as declared (history)
--   result_producers(result_id, session_id, task_id, via)      via = 'owner' | 'created_by' | 'client'
--   task_parents(task_id, session_id, parent_task_id)          spawn tree, direct parent only
--   task_attempts(task_id, session_id, initial_task_id, attempt, status)   attempt 1 = first try
--   task_retries(task_id, session_id, next_task_id)            attempt -> next attempt
--   task_phases(task_id, ..., waiting, queued, dispatch, fetching, processing, finishing, total)
--            durations in seconds (DOUBLE); null where a timestamp is missing; the phases are
--            aksnap.bundle.TASK_PHASES (tests/test_vocabulary.py checks they agree)
--   status_sets(tbl, status, final, success, failed, retried, cancelled, open, waiting,
--            in_progress, lost)   registered from aksnap.columns' status sets: queries test
--            membership with it, never a literal list

CREATE OR REPLACE VIEW task_dependencies AS
SELECT task_id, session_id, result_id, 'data' AS kind
FROM (SELECT task_id, session_id, unnest(data_dependencies) AS result_id FROM tasks)
UNION ALL
SELECT task_id, session_id, payload_id AS result_id, 'payload' AS kind
FROM tasks
WHERE payload_id IS NOT NULL AND payload_id <> '';

CREATE OR REPLACE VIEW task_outputs AS
SELECT task_id, session_id, unnest(expected_output_ids) AS result_id FROM tasks;

CREATE OR REPLACE VIEW result_producers AS
SELECT result_id, session_id,
       coalesce(nullif(owner_task_id, ''), nullif(created_by, '')) AS task_id,
       CASE WHEN coalesce(owner_task_id, '') <> '' THEN 'owner'
            WHEN coalesce(created_by, '') <> '' THEN 'created_by'
            ELSE 'client' END AS via
FROM results;

CREATE OR REPLACE VIEW task_parents AS
SELECT task_id, session_id, parent_task_ids[-1] AS parent_task_id
FROM tasks
WHERE len(parent_task_ids) > 0 AND parent_task_ids[-1] <> session_id;

CREATE OR REPLACE VIEW task_attempts AS
SELECT task_id, session_id, coalesce(nullif(initial_task_id, ''), task_id) AS initial_task_id,
       coalesce(len(retry_of_ids), 0) + 1 AS attempt, status
FROM tasks;

CREATE OR REPLACE VIEW task_retries AS
SELECT task_id, session_id, next_task_id
FROM (SELECT task_id, session_id,
             lead(task_id) OVER (PARTITION BY initial_task_id ORDER BY attempt) AS next_task_id
      FROM task_attempts)
WHERE next_task_id IS NOT NULL;

CREATE OR REPLACE VIEW task_phases AS
SELECT task_id, session_id, partition_id, status,
       (epoch_us(submitted_at) - epoch_us(created_at)) / 1e6 AS waiting,
       (epoch_us(acquired_at) - epoch_us(submitted_at)) / 1e6 AS queued,
       (epoch_us(fetched_at) - epoch_us(acquired_at)) / 1e6 AS dispatch,
       (epoch_us(started_at) - epoch_us(fetched_at)) / 1e6 AS fetching,
       (epoch_us(processed_at) - epoch_us(started_at)) / 1e6 AS processing,
       (epoch_us(ended_at) - epoch_us(processed_at)) / 1e6 AS finishing,
       (epoch_us(ended_at) - epoch_us(created_at)) / 1e6 AS total,
       created_at, submitted_at, acquired_at, fetched_at, started_at, processed_at, ended_at
FROM tasks;
