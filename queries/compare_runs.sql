-- name: compare_runs
-- purpose: `aksnap compare`'s per-run families over a whole archive at once, in one scan of
--          the task rows (and one aggregate): per run (every session of the run together) the task count, failed
--          (the status_sets failed set: ERROR, TIMEOUT), retried and still open (not final)
--          tasks; the wall time
--          (first created_at -> last ended_at), the makespan (first started_at -> last
--          ended_at), the throughput (ended tasks per second of wall time); the failed tasks
--          that ran (started_at set: the origins), those failed by propagation (never
--          started) and the distinct error messages of the failures that ran. One row per run
--          and metric, with the metric's better direction. Written once in DuckDB's dialect
--          and run on Spark through SQLGlot.
-- params: none (reads the archive views tasks and status_sets, and selected_runs)
-- views: selected_runs(run, pos) the runs compared, in order
-- columns: run, metric, scope, value, better
WITH t AS (
    SELECT t.run, t.status, t.created_at, t.started_at, t.ended_at, v.failed, v.retried, v.open,
           coalesce(nullif(trim(t.output_error), ''), nullif(trim(t.status_message), '')) AS message
    FROM tasks t
    JOIN selected_runs s ON t.run = s.run
    JOIN status_sets v ON v.tbl = 'tasks' AND v.status = t.status
), a AS (
    SELECT run,
           count(*) AS tasks,
           count(*) FILTER (WHERE failed) AS failed,
           count(*) FILTER (WHERE retried) AS retried,
           count(*) FILTER (WHERE open) AS incomplete,
           count(ended_at) AS ended,
           (epoch_us(max(ended_at)) - epoch_us(min(created_at))) / 1e6 AS wall_s,
           (epoch_us(max(ended_at)) - epoch_us(min(started_at))) / 1e6 AS makespan_s,
           count(*) FILTER (WHERE failed AND started_at IS NOT NULL) AS failed_ran,
           count(*) FILTER (WHERE failed AND started_at IS NULL) AS propagated,
           count(DISTINCT CASE WHEN failed AND started_at IS NOT NULL THEN message END) AS messages
    FROM t
    GROUP BY run
)
-- one row per run and metric from the one aggregate: a cross join with the metric list
-- (a UNION ALL of ten SELECTs from `a` is ten scans of the archive on Spark, which inlines CTEs)
SELECT a.run, m.metric, '' AS scope,
       CASE m.metric
           WHEN 'tasks.total' THEN CAST(a.tasks AS DOUBLE)
           WHEN 'tasks.failed' THEN CAST(a.failed AS DOUBLE)
           WHEN 'tasks.retried' THEN CAST(a.retried AS DOUBLE)
           WHEN 'tasks.incomplete' THEN CAST(a.incomplete AS DOUBLE)
           WHEN 'time.wall_s' THEN a.wall_s
           WHEN 'time.makespan_s' THEN a.makespan_s
           WHEN 'throughput.tasks_per_s' THEN a.ended / nullif(a.wall_s, 0)
           WHEN 'errors.failed_ran' THEN CAST(a.failed_ran AS DOUBLE)
           WHEN 'errors.propagated' THEN CAST(a.propagated AS DOUBLE)
           WHEN 'errors.messages' THEN CAST(a.messages AS DOUBLE)
       END AS value,
       m.better
FROM a
CROSS JOIN (VALUES ('tasks.total', 'none'),
                   ('tasks.failed', 'lower'),
                   ('tasks.retried', 'lower'),
                   ('tasks.incomplete', 'lower'),
                   ('time.wall_s', 'lower'),
                   ('time.makespan_s', 'lower'),
                   ('throughput.tasks_per_s', 'higher'),
                   ('errors.failed_ran', 'lower'),
                   ('errors.propagated', 'lower'),
                   ('errors.messages', 'lower')) AS m(metric, better)
