/* rr_router--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION rr_router UPDATE TO '1.1'" to load this file. \quit

--
-- Failover-safe causality tokens: the commit's timeline with its LSN.
--

CREATE FUNCTION @extschema@.rr_last_commit_token()
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'rr_last_commit_token'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.rr_last_commit_token() IS
'causality token of this session''s last transaction that wrote a commit record, as ''TLI:LSN'' (the timeline it was written on and its end LSN): the failover-safe token to hand to a replica';

CREATE FUNCTION @extschema@.rr_wait_for_token(token pg_catalog.text,
                                              timeout_ms pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'rr_wait_for_token'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.rr_wait_for_token(pg_catalog.text, pg_catalog.int4) IS
'rr_wait_for_lsn for a ''TLI:LSN'' token: true once this replica has replayed the token''s write (at once on a primary whose history holds it), false on timeout or when rr_router.replica_reads is off; ERROR RR001 when this server''s timeline history shows the write was lost in a failover';
