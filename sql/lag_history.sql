-- The worker samples every rr_router.sample_interval (20ms in this suite).
SELECT rr_reset_stats();
SELECT count(*) <= 1 AS emptied FROM rr_lag_history;
SELECT pg_sleep(0.5);

-- Newest first, one sample per interval, all fresh on a primary.
SELECT count(*) BETWEEN 5 AND 30 AS samples_in_half_a_second,
       bool_and(replay_lsn IS NULL) AS no_replay_on_primary,
       bool_and(lag_bytes = 0) AS no_lag,
       bool_and(staleness = '0') AS never_stale
  FROM rr_lag_history;
SELECT bool_and(prev_at > sampled_at) AS newest_first
  FROM (SELECT sampled_at, lag(sampled_at) OVER () AS prev_at
          FROM rr_lag_history) h
 WHERE prev_at IS NOT NULL;

-- One row per window, percentiles ordered.
SELECT period, samples > 0 AS has_samples,
       staleness_p50 <= staleness_p90 AND staleness_p90 <= staleness_p99
         AND staleness_p99 <= staleness_max AS ordered,
       staleness_max, lag_bytes_max
  FROM rr_lag_stats ORDER BY period;

-- Columns, in order.
SELECT attrelid::regclass, attnum, attname, atttypid::regtype
  FROM pg_attribute
 WHERE attrelid IN ('rr_lag_history'::regclass, 'rr_lag_stats'::regclass)
   AND attnum > 0
 ORDER BY attrelid::regclass::text, attnum;

-- Reset empties the ring and zeroes the counters.
SELECT rr_wait_for_lsn('0/1');
SELECT rr_reset_stats();
SELECT count(*) <= 1 AS emptied FROM rr_lag_history;
SELECT waits FROM rr_status;
