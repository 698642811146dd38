-- name: compare_baseline
-- purpose: every run's figures against its baseline, over the whole archive at once: the
--          median of the same metric over the previous $history_runs runs (rolling) and their
--          median absolute deviation (MAD), or a pinned run's value; a figure regresses when it
--          moves the worse way by more than max(k x 1.4826 x MAD, min_rel x |baseline|,
--          min_abs). Runs with fewer than min_history earlier runs get no verdict. Reads the
--          family queries' rows (metric_values) and one row of parameters (compare_params),
--          both registered by aksnap.analyzer.compare, so the SQL is the same on every engine.
-- params: none (compare_params: history_runs, k, min_rel, min_abs, min_history, baseline_run, first_reported)
-- views: metric_values(run, metric, scope, value, better), selected_runs(run, pos), compare_params
-- columns: run, pos, metric, scope, value, better, baseline, mad, history, delta, rel_delta, verdict
WITH v AS (
    SELECT m.run, s.pos, m.metric, m.scope, m.value, m.better
    FROM metric_values m
    JOIN selected_runs s ON m.run = s.run
    WHERE m.value IS NOT NULL
), hist AS (
    SELECT c.run, c.metric, c.scope, p.value AS prev
    FROM v c
    JOIN v p ON p.metric = c.metric AND p.scope = c.scope
    CROSS JOIN compare_params k
    WHERE k.baseline_run IS NULL AND p.pos < c.pos AND p.pos >= c.pos - k.history_runs
      AND c.pos >= k.first_reported
), med AS (
    SELECT run, metric, scope, median(prev) AS baseline, count(*) AS history
    FROM hist
    GROUP BY run, metric, scope
), mad AS (
    SELECT h.run, h.metric, h.scope, median(abs(h.prev - m.baseline)) AS mad
    FROM hist h
    JOIN med m ON h.run = m.run AND h.metric = m.metric AND h.scope = m.scope
    GROUP BY h.run, h.metric, h.scope
), base AS (
    SELECT med.run, med.metric, med.scope, med.baseline, mad.mad, med.history
    FROM med
    JOIN mad ON med.run = mad.run AND med.metric = mad.metric AND med.scope = mad.scope
    UNION ALL
    SELECT c.run, c.metric, c.scope, p.value AS baseline, 0.0 AS mad, 1 AS history
    FROM v c
    JOIN v p ON p.metric = c.metric AND p.scope = c.scope
    CROSS JOIN compare_params k
    WHERE p.run = k.baseline_run AND c.run <> k.baseline_run
)
SELECT v.run, v.pos, v.metric, v.scope, v.value, v.better,
       -- too few earlier runs: no baseline, so no baseline value, MAD nor delta either
       CASE WHEN b.history >= k.min_history THEN b.baseline END AS baseline,
       CASE WHEN b.history >= k.min_history THEN b.mad END AS mad,
       coalesce(b.history, 0) AS history,
       CASE WHEN b.history >= k.min_history THEN v.value - b.baseline END AS delta,
       CASE WHEN b.history >= k.min_history
            THEN (v.value - b.baseline) / nullif(abs(b.baseline), 0) END AS rel_delta,
       CASE WHEN b.baseline IS NULL OR b.history < k.min_history THEN 'no baseline'
            WHEN abs(v.value - b.baseline) <= greatest(k.k * 1.4826 * b.mad,
                                                       k.min_rel * abs(b.baseline), k.min_abs)
                THEN 'same'
            WHEN v.better = 'none' THEN 'changed'
            WHEN (v.value > b.baseline) = (v.better = 'lower') THEN 'regression'
            ELSE 'improvement' END AS verdict
FROM v
LEFT JOIN base b ON b.run = v.run AND b.metric = v.metric AND b.scope = v.scope
CROSS JOIN compare_params k
WHERE v.pos >= k.first_reported
ORDER BY v.pos, v.metric, v.scope
