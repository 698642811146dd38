-- name: compare_errors
-- purpose: `aksnap compare`'s error family over a whole archive at once: per run, the failed
--          tasks (the status_sets failed set) that ran (started_at set: the origins), those that
--          failed by propagation (never started), and the distinct error messages of the
--          failures that ran. Lower is better.
-- params: none (reads the archive views tasks and status_sets, and selected_runs)
-- views: selected_runs(run, pos) the runs compared, in order
-- columns: run, metric, scope, value, better
WITH t AS (
    SELECT t.run, t.started_at, v.failed,
           coalesce(nullif(trim(t.output_error), ''), nullif(trim(t.status_message), '')) AS message
    FROM tasks t
    JOIN selected_runs s ON t.run = s.run
    JOIN status_sets v ON v.tbl = 'tasks' AND v.status = t.status
), a AS (
    SELECT run,
           count(*) FILTER (WHERE failed AND started_at IS NOT NULL) AS ran,
           count(*) FILTER (WHERE failed AND started_at IS NULL) AS propagated,
           count(DISTINCT CASE WHEN failed AND started_at IS NOT NULL THEN message END) AS messages
    FROM t
    GROUP BY run
)
SELECT run, 'errors.failed_ran' AS metric, '' AS scope, CAST(ran AS DOUBLE) AS value, 'lower' AS better FROM a
UNION ALL SELECT run, 'errors.propagated', '', CAST(propagated AS DOUBLE), 'lower' FROM a
UNION ALL SELECT run, 'errors.messages', '', CAST(messages AS DOUBLE), 'lower' FROM a
