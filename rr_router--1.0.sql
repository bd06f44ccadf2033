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
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_wait_for_lsn(pg_catalog.pg_lsn, pg_catalog.int4) IS
'waits until this replica has replayed WAL up to target; true when it has (at once on a primary), false on timeout or when rr_router.replica_reads is off';

CREATE FUNCTION @extschema@.rr_last_commit_lsn()
RETURNS pg_catalog.pg_lsn
AS 'MODULE_PATHNAME', 'rr_last_commit_lsn'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_last_commit_lsn() IS
'end LSN of the commit record of this session''s last transaction that wrote one: the causality token to hand to a replica';

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

--
-- Privileges: the functions of the contract for everyone, the views for
-- pg_monitor.
--

REVOKE ALL ON FUNCTION @extschema@.rr_status_data() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.rr_waiters_data() FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_status FROM PUBLIC;
REVOKE ALL ON @extschema@.rr_waiters FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.rr_status_data() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.rr_waiters_data() TO pg_monitor;
GRANT SELECT ON @extschema@.rr_status TO pg_monitor;
GRANT SELECT ON @extschema@.rr_waiters TO pg_monitor;
