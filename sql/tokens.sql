-- Failover-safe causality tokens: 'TLI:LSN'.

-- A new session has no token yet.
SELECT rr_last_commit_token();

-- A committed write's token is the timeline it was written on and the end
-- of its commit record: rr_last_commit_lsn() with the timeline in front.
CREATE TABLE tokens_t (i int);
INSERT INTO tokens_t VALUES (1);
SELECT rr_last_commit_token() ~ '^[1-9][0-9]*:[0-9A-F]+/[0-9A-F]+$' AS well_formed,
       rr_last_commit_token() =
         (SELECT timeline_id FROM pg_control_checkpoint()) || ':' || rr_last_commit_lsn()
         AS timeline_and_lsn;
SELECT rr_last_commit_token() AS token1 \gset

-- Reads and rolled-back writes leave it, as they leave rr_last_commit_lsn().
SELECT count(*) FROM tokens_t;
BEGIN;
INSERT INTO tokens_t VALUES (2);
ROLLBACK;
SELECT rr_last_commit_token() = :'token1' AS unchanged;
DROP TABLE tokens_t;
SELECT rr_last_commit_token() <> :'token1' AS moved_by_ddl;
