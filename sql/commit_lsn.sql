-- A new session has no token yet.
SELECT rr_last_commit_lsn();

-- A committed write sets it to the end of its commit record.
CREATE TABLE commit_lsn_t (i int);
SELECT rr_last_commit_lsn() IS NOT NULL AS has_token,
       rr_last_commit_lsn() <= pg_current_wal_lsn() AS not_in_future;
SELECT rr_last_commit_lsn() AS after_create \gset
INSERT INTO commit_lsn_t VALUES (1);
SELECT rr_last_commit_lsn() > :'after_create'::pg_lsn AS advanced;
SELECT rr_last_commit_lsn() AS after_insert \gset

-- Reads, rolled-back writes and transactions that write nothing leave it.
SELECT count(*) FROM commit_lsn_t;
BEGIN;
INSERT INTO commit_lsn_t VALUES (2);
ROLLBACK;
BEGIN;
COMMIT;
SELECT rr_last_commit_lsn() = :'after_insert'::pg_lsn AS unchanged;

-- An explicit transaction's token is its own commit record's end.
BEGIN;
INSERT INTO commit_lsn_t VALUES (3);
SELECT pg_current_wal_insert_lsn() AS before_commit \gset
COMMIT;
SELECT rr_last_commit_lsn() > :'before_commit'::pg_lsn AS past_its_writes;

-- The reporting switch is a user setting.  With it on, a commit shows its
-- token in the GUC_REPORT settings rr_router.last_commit_lsn and
-- rr_router.last_commit_token, which are empty until then.
SHOW rr_router.last_commit_lsn;
SHOW rr_router.last_commit_token;
SET rr_router.report_commit_lsn = on;
INSERT INTO commit_lsn_t VALUES (4);
SHOW rr_router.report_commit_lsn;
SELECT current_setting('rr_router.last_commit_lsn') = rr_last_commit_lsn()::text AS shows_lsn,
       current_setting('rr_router.last_commit_token') =
         (SELECT timeline_id FROM pg_control_checkpoint()) || ':' || rr_last_commit_lsn()
         AS shows_token;
SELECT rr_last_commit_lsn() AS reported \gset

-- Anyone may SET them (poolers replay reported settings that way): that
-- changes what is shown, never the session's token.
SET rr_router.last_commit_lsn = '0/DEADBEEF';
SET "rr_router.last_commit_token" TO 'anything at all';
SHOW rr_router.last_commit_lsn;
SHOW rr_router.last_commit_token;
SELECT rr_last_commit_lsn() = :'reported'::pg_lsn AS token_unchanged;
RESET rr_router.last_commit_lsn;
RESET rr_router.last_commit_token;
SHOW rr_router.last_commit_lsn;

-- With reporting off, commits leave the settings alone.
RESET rr_router.report_commit_lsn;
INSERT INTO commit_lsn_t VALUES (5);
SELECT rr_last_commit_lsn() > :'reported'::pg_lsn AS token_moved,
       current_setting('rr_router.last_commit_lsn') AS shown;

-- They belong to sessions, not to configuration files.
ALTER SYSTEM SET rr_router.last_commit_lsn = '0/1';

DROP TABLE commit_lsn_t;

-- COMMIT PREPARED writes the prepared transaction's commit record from a
-- transaction without an xid: the token moves to it.  ROLLBACK PREPARED
-- commits nothing and leaves the token.
CREATE TABLE commit_lsn_2pc (i int);
BEGIN;
INSERT INTO commit_lsn_2pc VALUES (1);
PREPARE TRANSACTION 'rr_2pc';
SELECT rr_last_commit_lsn() AS before_commit_prepared \gset
SELECT pg_current_wal_insert_lsn() AS prepared_at \gset
COMMIT PREPARED 'rr_2pc';
SELECT rr_last_commit_lsn() > :'prepared_at'::pg_lsn AS moved_to_commit_prepared;
SELECT rr_last_commit_lsn() AS after_commit_prepared \gset
BEGIN;
INSERT INTO commit_lsn_2pc VALUES (2);
PREPARE TRANSACTION 'rr_2pc_rollback';
ROLLBACK PREPARED 'rr_2pc_rollback';
SELECT rr_last_commit_lsn() = :'after_commit_prepared'::pg_lsn AS rollback_prepared_leaves_it;
DROP TABLE commit_lsn_2pc;
