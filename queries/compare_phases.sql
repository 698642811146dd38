-- name: compare_phases
-- purpose: `aksnap compare`'s phase family over a whole archive at once: per run and partition,
--          the p50 and p90 of every task phase (aksnap.bundle.TASK_PHASES, as the task_phases
--          view: waiting, queued, dispatch, fetching, processing, finishing), in seconds; one
--          row per run, metric and partition (scope). Lower is better.
-- params: none (reads the archive view tasks, and selected_runs)
-- views: selected_runs(run, pos) the runs compared, in order
-- columns: run, metric, scope, value, better
WITH p AS (
    -- integer microseconds: exact quantiles of integers sort about a third faster than of
    -- doubles (20 M task rows); the seconds are taken after interpolating
    SELECT t.run, coalesce(t.partition_id, '') AS partition_id,
           epoch_us(submitted_at) - epoch_us(created_at) AS waiting,
           epoch_us(acquired_at) - epoch_us(submitted_at) AS queued,
           epoch_us(fetched_at) - epoch_us(acquired_at) AS dispatch,
           epoch_us(started_at) - epoch_us(fetched_at) AS fetching,
           epoch_us(processed_at) - epoch_us(started_at) AS processing,
           epoch_us(ended_at) - epoch_us(processed_at) AS finishing
    FROM tasks t
    JOIN selected_runs s ON t.run = s.run
), a AS (
    -- both fractions of a phase from one sort
    SELECT run, partition_id,
           quantile_cont(waiting, [0.5, 0.9]) AS w, quantile_cont(queued, [0.5, 0.9]) AS q,
           quantile_cont(dispatch, [0.5, 0.9]) AS d, quantile_cont(fetching, [0.5, 0.9]) AS f,
           quantile_cont(processing, [0.5, 0.9]) AS p, quantile_cont(finishing, [0.5, 0.9]) AS e
    FROM p
    GROUP BY run, partition_id
)
-- one row per run, partition and metric from the one aggregate (a UNION ALL of twelve SELECTs
-- from `a` is twelve scans and sorts of the archive on Spark, which inlines CTEs)
SELECT a.run, m.metric, a.partition_id AS scope,
       CASE m.metric
           WHEN 'phase.waiting.p50' THEN a.w[1] / 1e6
           WHEN 'phase.waiting.p90' THEN a.w[2] / 1e6
           WHEN 'phase.queued.p50' THEN a.q[1] / 1e6
           WHEN 'phase.queued.p90' THEN a.q[2] / 1e6
           WHEN 'phase.dispatch.p50' THEN a.d[1] / 1e6
           WHEN 'phase.dispatch.p90' THEN a.d[2] / 1e6
           WHEN 'phase.fetching.p50' THEN a.f[1] / 1e6
           WHEN 'phase.fetching.p90' THEN a.f[2] / 1e6
           WHEN 'phase.processing.p50' THEN a.p[1] / 1e6
           WHEN 'phase.processing.p90' THEN a.p[2] / 1e6
           WHEN 'phase.finishing.p50' THEN a.e[1] / 1e6
           WHEN 'phase.finishing.p90' THEN a.e[2] / 1e6
       END AS value,
       'lower' AS better
FROM a
CROSS JOIN (VALUES ('phase.waiting.p50'),
                   ('phase.waiting.p90'),
                   ('phase.queued.p50'),
                   ('phase.queued.p90'),
                   ('phase.dispatch.p50'),
                   ('phase.dispatch.p90'),
                   ('phase.fetching.p50'),
                   ('phase.fetching.p90'),
                   ('phase.processing.p50'),
                   ('phase.processing.p90'),
                   ('phase.finishing.p50'),
                   ('phase.finishing.p90')) AS m(metric)
