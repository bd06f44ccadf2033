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

-- On a primary a token in its history is true at once: one of an ancestor
-- timeline up to its switch point, one of its own timeline up to the end
-- of its WAL.
SELECT rr_wait_for_token(:'token1');
SELECT rr_wait_for_token('1:0/0');
SELECT * FROM rr_wait_for_token('1:0/1', 1);
SELECT rr_wait_for_token('1:' || pg_current_wal_insert_lsn(), 0) AS at_wal_end;

-- Beyond the end of its WAL a token of its own timeline is not in its
-- history (a tail lost in a crash with synchronous_commit off and the
-- server restarted on the same timeline, or a made-up token): RR001, with
-- the end of its WAL in the detail, however long the call may wait.
CREATE FUNCTION pg_temp.lost(token text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    RETURN rr_wait_for_token(token, 0)::text;
EXCEPTION WHEN SQLSTATE 'RR001' THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL,
                            hint = PG_EXCEPTION_HINT;
    RETURN format(E'RR001 %s\n%s', regexp_replace(detail,
        'ends at [0-9A-F]+/[0-9A-F]+,', 'ends at (the insert position),'),
        hint);
END $$;
SELECT pg_temp.lost('1:FFFFFFFF/FFFFFFFF');
WITH t(token) AS (SELECT '1:' || (pg_current_wal_insert_lsn() + 1000000))
SELECT pg_temp.lost(token) =
         format(E'RR001 This server''s WAL on its timeline 1 ends at (the insert position), before the LSN of the token "%s".\n'
                'Tell the user that the write may have been lost: the primary''s history does not contain it.',
                token) AS beyond_wal_end
  FROM t;
\set VERBOSITY terse
SELECT rr_wait_for_token('1:' || (pg_current_wal_insert_lsn() + 1000000), 1000);
\set VERBOSITY default

-- A NULL timeout means rr_router.wait_timeout; a NULL token gives NULL.
SELECT rr_wait_for_token('1:0/1', NULL);
SELECT rr_wait_for_token(NULL);
SELECT rr_wait_for_token(NULL, 100) IS NULL AS is_null;
SELECT rr_wait_for_token(NULL, -1) IS NULL AS null_first;

-- A timeline that is not in this primary's history: the write is not here
-- and never will be (RR001, whose SQLSTATE shows below), however the call
-- is made.
SELECT rr_wait_for_token('2:0/1');
SELECT rr_wait_for_token('4294967295:0/1', 0);

-- Malformed tokens are 22P02, a negative timeout 22023; the SQLSTATEs, by
-- way of a helper that may call it anywhere (timeout 0):
CREATE FUNCTION pg_temp.outcome(token text, timeout_ms int DEFAULT 0)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN rr_wait_for_token(token, timeout_ms)::text;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
SELECT format('%-18s', quote_literal(t)) AS token, pg_temp.outcome(t)
  FROM (VALUES (''), ('0/3000148'), ('1'), ('1:'), (':0/1'), ('0:0/1'),
               ('00:0/1'), ('-1:0/1'), ('+1:0/1'), (' 1:0/1'), ('1 :0/1'),
               ('1:0/1 '), ('1:0/1x'), ('1:0/1/2'), ('1:0/1:0/1'),
               ('1:0/'), ('1:/1'), ('1:G/1'), ('1:123456789/0'),
               ('1:0/123456789'), ('4294967296:0/1'), ('99999999999:0/1'),
               ('1:0x0/1'), ('00000001:0/3000148'), ('01:0/1')) AS v(t);
SELECT pg_temp.outcome('2:0/1') AS not_in_history;
SELECT pg_temp.outcome('1:0/1', -1);
SELECT pg_temp.outcome('bad', -1) AS token_checked_first;

-- The messages in full.
SELECT rr_wait_for_token('0:0/1');
SELECT rr_wait_for_token('1:0/1 ');
SELECT rr_wait_for_token('01:0/1');
-- an over-long token is echoed in part
SELECT rr_wait_for_token(repeat('1:0/1', 1000));
SELECT rr_wait_for_token('1:0/1', -1);

-- Every rule of rr_wait_for_lsn: not inside a transaction that has its
-- snapshot, and a call that may wait must be its statement's only work.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 1;
SELECT rr_wait_for_token('1:0/1');
ROLLBACK;
SELECT rr_wait_for_token('1:0/1', 10), 1 AS other;
DO $$ BEGIN PERFORM rr_wait_for_token('1:0/1', 10); END $$;
DO $$ BEGIN ASSERT rr_wait_for_token('1:0/1', 0); END $$;
PREPARE w(text) AS SELECT rr_wait_for_token($1, 100);
EXECUTE w('1:0/1');
DEALLOCATE w;
