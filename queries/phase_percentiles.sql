-- name: phase_percentiles
-- purpose: the distribution of every task phase (aksnap.bundle.TASK_PHASES) per session and partition (over all task rows,
--          not a mean of page means): count, mean, p50, p90, p99, max, in seconds. The totals
--          are summed as whole microseconds (exact, so the same in every run: a sum of doubles
--          depends on the order DuckDB's threads add them in).
-- params: $session_id (optional)
-- columns: session_id, partition_id, phase, tasks, total_s, mean_s, p50_s, p90_s, p99_s, max_s
WITH a AS (
    SELECT session_id, partition_id,
           count(waiting) AS n1, sum(round(waiting * 1e6)::BIGINT) / 1e6 AS s1, quantile_cont(waiting, [0.5, 0.9, 0.99]) AS q1, max(waiting) AS m1,
           count(queued) AS n2, sum(round(queued * 1e6)::BIGINT) / 1e6 AS s2, quantile_cont(queued, [0.5, 0.9, 0.99]) AS q2, max(queued) AS m2,
           count(dispatch) AS n3, sum(round(dispatch * 1e6)::BIGINT) / 1e6 AS s3, quantile_cont(dispatch, [0.5, 0.9, 0.99]) AS q3, max(dispatch) AS m3,
           count(fetching) AS n4, sum(round(fetching * 1e6)::BIGINT) / 1e6 AS s4, quantile_cont(fetching, [0.5, 0.9, 0.99]) AS q4, max(fetching) AS m4,
           count(processing) AS n5, sum(round(processing * 1e6)::BIGINT) / 1e6 AS s5, quantile_cont(processing, [0.5, 0.9, 0.99]) AS q5, max(processing) AS m5,
           count(finishing) AS n6, sum(round(finishing * 1e6)::BIGINT) / 1e6 AS s6, quantile_cont(finishing, [0.5, 0.9, 0.99]) AS q6, max(finishing) AS m6,
           count(total) AS n7, sum(round(total * 1e6)::BIGINT) / 1e6 AS s7, quantile_cont(total, [0.5, 0.9, 0.99]) AS q7, max(total) AS m7
    FROM task_phases
    WHERE $session_id::VARCHAR IS NULL OR session_id = $session_id::VARCHAR
    GROUP BY session_id, partition_id
), u AS (
    SELECT session_id, partition_id, 1 AS k, 'waiting' AS phase, n1 AS tasks, s1 AS total_s, q1 AS q, m1 AS max_s FROM a
    UNION ALL SELECT session_id, partition_id, 2, 'queued', n2, s2, q2, m2 FROM a
    UNION ALL SELECT session_id, partition_id, 3, 'dispatch', n3, s3, q3, m3 FROM a
    UNION ALL SELECT session_id, partition_id, 4, 'fetching', n4, s4, q4, m4 FROM a
    UNION ALL SELECT session_id, partition_id, 5, 'processing', n5, s5, q5, m5 FROM a
    UNION ALL SELECT session_id, partition_id, 6, 'finishing', n6, s6, q6, m6 FROM a
    UNION ALL SELECT session_id, partition_id, 7, 'total', n7, s7, q7, m7 FROM a
)
SELECT session_id, partition_id, phase, tasks, total_s, total_s / nullif(tasks, 0) AS mean_s,
       q[1] AS p50_s, q[2] AS p90_s, q[3] AS p99_s, max_s
FROM u
ORDER BY session_id, partition_id, k;
