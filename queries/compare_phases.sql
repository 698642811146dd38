-- name: compare_phases
-- purpose: `aksnap compare`'s phase family over a whole archive at once: per run and partition,
--          the p50 and p90 of every task phase (aksnap.bundle.TASK_PHASES, as the task_phases
--          view: waiting, queued, dispatch, fetching, processing, finishing), in seconds; one
--          row per run, metric and partition (scope). Lower is better.
-- params: none (reads the archive view tasks, and selected_runs)
-- views: selected_runs(run, pos) the runs compared, in order
-- columns: run, metric, scope, value, better
WITH p AS (
    SELECT t.run, coalesce(t.partition_id, '') AS partition_id,
           (epoch_us(submitted_at) - epoch_us(created_at)) / 1e6 AS waiting,
           (epoch_us(acquired_at) - epoch_us(submitted_at)) / 1e6 AS queued,
           (epoch_us(fetched_at) - epoch_us(acquired_at)) / 1e6 AS dispatch,
           (epoch_us(started_at) - epoch_us(fetched_at)) / 1e6 AS fetching,
           (epoch_us(processed_at) - epoch_us(started_at)) / 1e6 AS processing,
           (epoch_us(ended_at) - epoch_us(processed_at)) / 1e6 AS finishing
    FROM tasks t
    JOIN selected_runs s ON t.run = s.run
), a AS (
    SELECT run, partition_id,
           quantile_cont(waiting, 0.5) AS w50, quantile_cont(waiting, 0.9) AS w90,
           quantile_cont(queued, 0.5) AS q50, quantile_cont(queued, 0.9) AS q90,
           quantile_cont(dispatch, 0.5) AS d50, quantile_cont(dispatch, 0.9) AS d90,
           quantile_cont(fetching, 0.5) AS f50, quantile_cont(fetching, 0.9) AS f90,
           quantile_cont(processing, 0.5) AS p50, quantile_cont(processing, 0.9) AS p90,
           quantile_cont(finishing, 0.5) AS e50, quantile_cont(finishing, 0.9) AS e90
    FROM p
    GROUP BY run, partition_id
)
SELECT run, 'phase.waiting.p50' AS metric, partition_id AS scope, w50 AS value, 'lower' AS better FROM a
UNION ALL SELECT run, 'phase.waiting.p90', partition_id, w90, 'lower' FROM a
UNION ALL SELECT run, 'phase.queued.p50', partition_id, q50, 'lower' FROM a
UNION ALL SELECT run, 'phase.queued.p90', partition_id, q90, 'lower' FROM a
UNION ALL SELECT run, 'phase.dispatch.p50', partition_id, d50, 'lower' FROM a
UNION ALL SELECT run, 'phase.dispatch.p90', partition_id, d90, 'lower' FROM a
UNION ALL SELECT run, 'phase.fetching.p50', partition_id, f50, 'lower' FROM a
UNION ALL SELECT run, 'phase.fetching.p90', partition_id, f90, 'lower' FROM a
UNION ALL SELECT run, 'phase.processing.p50', partition_id, p50, 'lower' FROM a
UNION ALL SELECT run, 'phase.processing.p90', partition_id, p90, 'lower' FROM a
UNION ALL SELECT run, 'phase.finishing.p50', partition_id, e50, 'lower' FROM a
UNION ALL SELECT run, 'phase.finishing.p90', partition_id, e90, 'lower' FROM a
