/* rr_router--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION rr_router" to load this file. \quit

--
-- Causality tokens
--

CREATE FUNCTION @extschema@.rr_wait_for_lsn(target pg_catalog.pg_lsn,
                                            timeout_ms pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'rr_wait_for_lsn'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.rr_wait_for_lsn(pg_catalog.pg_lsn, pg_catalog.int4) IS
'waits until this replica has replayed WAL up to target; true when it has (at once on a primary), false on timeout or when rr_router.replica_reads is off';

CREATE FUNCTION @extschema@.rr_last_commit_lsn()
RETURNS pg_catalog.pg_lsn
AS 'MODULE_PATHNAME', 'rr_last_commit_lsn'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_last_commit_lsn() IS
'end LSN of the commit record of this session''s last transaction that wrote one: the causality token to hand to a replica';

--
-- Freshness
--

CREATE FUNCTION @extschema@.rr_staleness()
RETURNS pg_catalog.interval
AS 'MODULE_PATHNAME', 'rr_staleness'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.rr_staleness() IS
'upper bound on how far this server''s visible data is behind the primary: 0 on a primary, NULL while unknown';

CREATE FUNCTION @extschema@.rr_is_fresh(max_staleness pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'rr_is_fresh'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.rr_is_fresh(pg_catalog.interval) IS
'rr_staleness() <= max_staleness (NULL: rr_router.max_staleness); false while unknown or when rr_router.replica_reads is off; true on a primary';

CREATE FUNCTION @extschema@.rr_reset_stats()
RETURNS pg_catalog.void
AS 'MODULE_PATHNAME', 'rr_reset_stats'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.rr_reset_stats() IS
'clears the wait counters and the lag history';

--
-- Monitoring views
--

CREATE FUNCTION @extschema@.rr_status_data(
    OUT role pg_catalog.text,
    OUT replica_reads pg_catalog.bool,
    OUT timeline pg_catalog.int8,
    OUT receive_lsn pg_catalog.pg_lsn,
    OUT replay_lsn pg_catalog.pg_lsn,
    OUT primary_lsn pg_catalog.pg_lsn,
    OUT lag_bytes pg_catalog.int8,
    OUT staleness pg_catalog.interval,
    OUT as_of pg_catalog.timestamptz,
    OUT replay_paused pg_catalog.bool,
    OUT receiver_state pg_catalog.text,
    OUT clock_offset pg_catalog.interval,
    OUT last_sample_at pg_catalog.timestamptz,
    OUT worker_pid pg_catalog.int4,
    OUT waits pg_catalog.int8,
    OUT waits_immediate pg_catalog.int8,
    OUT waits_woken pg_catalog.int8,
    OUT waits_timed_out pg_catalog.int8,
    OUT waits_cancelled pg_catalog.int8,
    OUT wait_time_total pg_catalog.interval,
    OUT wait_time_max pg_catalog.interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rr_status_data'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED ROWS 1;

COMMENT ON FUNCTION @extschema@.rr_status_data() IS
'the row behind the rr_status view';

CREATE VIEW @extschema@.rr_status AS
    SELECT * FROM @extschema@.rr_status_data();

COMMENT ON VIEW @extschema@.rr_status IS
'this server''s role, replication progress as last sampled, kill switch and rr_wait_for_lsn counters';

CREATE FUNCTION @extschema@.rr_waiters_data(
    OUT pid pg_catalog.int4,
    OUT target_lsn pg_catalog.pg_lsn,
    OUT waiting_since pg_catalog.timestamptz,
    OUT deadline pg_catalog.timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rr_waiters_data'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_waiters_data() IS
'the rows behind the rr_waiters view';

CREATE VIEW @extschema@.rr_waiters AS
    SELECT * FROM @extschema@.rr_waiters_data();

COMMENT ON VIEW @extschema@.rr_waiters IS
'sessions waiting in rr_wait_for_lsn now, with their target and deadline';

CREATE FUNCTION @extschema@.rr_lag_history_data(
    OUT sampled_at pg_catalog.timestamptz,
    OUT replay_lsn pg_catalog.pg_lsn,
    OUT lag_bytes pg_catalog.int8,
    OUT staleness pg_catalog.interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rr_lag_history_data'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_lag_history_data() IS
'the rows behind the rr_lag_history view';

CREATE VIEW @extschema@.rr_lag_history AS
    SELECT * FROM @extschema@.rr_lag_history_data();

COMMENT ON VIEW @extschema@.rr_lag_history IS
'the sample ring, newest first: replay position, lag in bytes and staleness every rr_router.sample_interval';

CREATE FUNCTION @extschema@.rr_lag_stats_data(
    OUT period pg_catalog.interval,
    OUT samples pg_catalog.int8,
    OUT staleness_p50 pg_catalog.interval,
    OUT staleness_p90 pg_catalog.interval,
    OUT staleness_p99 pg_catalog.interval,
    OUT staleness_max pg_catalog.interval,
    OUT lag_bytes_max pg_catalog.int8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rr_lag_stats_data'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED ROWS 3;

COMMENT ON FUNCTION @extschema@.rr_lag_stats_data() IS
'the rows behind the rr_lag_stats view';

CREATE VIEW @extschema@.rr_lag_stats AS
    SELECT * FROM @extschema@.rr_lag_stats_data();

COMMENT ON VIEW @extschema@.rr_lag_stats IS
'staleness percentiles and the largest lag over the last 1, 5 and 15 minutes, to size read-after-write windows and alerts';

--
-- Privileges: the functions of the contract for everyone but
-- rr_reset_stats(), the views for pg_monitor.
--

REVOKE ALL ON FUNCTION @extschema@.rr_reset_stats() FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.rr_status_data() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.rr_waiters_data() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.rr_lag_history_data() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.rr_lag_stats_data() FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_status FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_waiters FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_lag_history FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_lag_stats FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.rr_status_data() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.rr_waiters_data() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.rr_lag_history_data() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.rr_lag_stats_data() TO pg_monitor;
GRANT SELECT ON @extschema@.rr_status TO pg_monitor;
GRANT SELECT ON @extschema@.rr_waiters TO pg_monitor;
GRANT SELECT ON @extschema@.rr_lag_history TO pg_monitor;
GRANT SELECT ON @extschema@.rr_lag_stats TO pg_monitor;
