-- Wait (at most 10 s) for the worker's first sample.
DO $$
BEGIN
  FOR i IN 1..1000 LOOP
    EXIT WHEN (SELECT last_sample_at IS NOT NULL FROM rr_status);
    PERFORM pg_sleep(0.01);
  END LOOP;
END
$$;

-- rr_status on a primary.
SELECT role, replica_reads, timeline, receive_lsn, replay_lsn,
       primary_lsn IS NOT NULL AS has_primary_lsn,
       primary_lsn <= pg_current_wal_lsn() AS primary_lsn_sane,
       lag_bytes, replay_paused, receiver_state,
       last_sample_at > now() - interval '1 minute' AS recent_sample,
       worker_pid > 0 AS has_worker
  FROM rr_status;

-- Its columns, in order.
SELECT attnum, attname, atttypid::regtype
  FROM pg_attribute
 WHERE attrelid = 'rr_status'::regclass AND attnum > 0
 ORDER BY attnum;

-- Nobody waits on a primary.
SELECT * FROM rr_waiters;
SELECT attnum, attname, atttypid::regtype
  FROM pg_attribute
 WHERE attrelid = 'rr_waiters'::regclass AND attnum > 0
 ORDER BY attnum;
