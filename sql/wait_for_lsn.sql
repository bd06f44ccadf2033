-- On a primary every target is already visible: true at once.
SELECT rr_wait_for_lsn('0/0');
SELECT rr_wait_for_lsn(pg_current_wal_lsn());
SELECT rr_wait_for_lsn('FFFFFFFF/FFFFFFFF', 0);
SELECT rr_wait_for_lsn(pg_current_wal_lsn() + 1000000, 10);
SELECT * FROM rr_wait_for_lsn('0/1', 1);

-- A NULL timeout means rr_router.wait_timeout; a NULL target gives NULL.
SELECT rr_wait_for_lsn('0/1', NULL);
SELECT rr_wait_for_lsn(NULL);
SELECT rr_wait_for_lsn(NULL, 100) IS NULL AS is_null;

-- Bad input is refused with a clear error.
SELECT rr_wait_for_lsn('0/1', -1);
SELECT rr_wait_for_lsn('not an lsn');
SELECT rr_wait_for_lsn('0/1', 'soon');
SELECT rr_wait_for_lsn('0/1', 3000000000);
SET rr_router.wait_timeout = -5;
SET rr_router.wait_timeout = '1 fortnight';
SET rr_router.wait_timeout = '250ms';
SHOW rr_router.wait_timeout;
RESET rr_router.wait_timeout;

-- Inside a transaction that already has its snapshot, waiting is pointless.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT rr_wait_for_lsn('0/1');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT 1;
SELECT rr_wait_for_lsn('0/1');
ROLLBACK;

-- READ COMMITTED transactions may call it, at their start.
BEGIN;
SELECT rr_wait_for_lsn('0/1');
COMMIT;

-- A call that may wait must be its statement's only work, on every server
-- and at any lag, so that misuse shows up before production lag does.
SELECT rr_wait_for_lsn('0/1', 10), 1 AS other;
SELECT rr_wait_for_lsn('0/1', 10) FROM generate_series(1, 2);
DO $$ BEGIN PERFORM rr_wait_for_lsn('0/1', 10); END $$;
BEGIN;
DECLARE c CURSOR FOR SELECT 1;
SELECT rr_wait_for_lsn('0/1');
ROLLBACK;
-- A cursor over the call would keep the statement's snapshot (and so its
-- old xmin) alive after the wait, and FETCH runs it nested in a statement
-- of its own: refused, like a function looping over the call.
BEGIN;
DECLARE w CURSOR FOR SELECT rr_wait_for_lsn('0/1', 10);
FETCH w;
ROLLBACK;
DECLARE h CURSOR WITH HOLD FOR SELECT rr_wait_for_lsn('0/1', 10);
DO $$ DECLARE r record;
BEGIN FOR r IN SELECT rr_wait_for_lsn('0/1', 10) LOOP END LOOP; END $$;
-- An open cursor, even a materialized WITH HOLD one, is another portal.
DECLARE held CURSOR WITH HOLD FOR SELECT 1;
SELECT rr_wait_for_lsn('0/1');
CLOSE held;
SELECT rr_wait_for_lsn('0/1');
-- ... while a check without waiting may go anywhere.
SELECT rr_wait_for_lsn('0/1', 0), 1 AS other;
DO $$ BEGIN ASSERT rr_wait_for_lsn('0/1', 0); END $$;
SELECT ok FROM rr_wait_for_lsn('0/1', 100) AS ok;
PREPARE w(pg_lsn) AS SELECT rr_wait_for_lsn($1, 100);
EXECUTE w('0/1');
DEALLOCATE w;

-- Every call above that got past its arguments was counted as immediate.
SELECT waits, waits_immediate, waits_woken, waits_timed_out, waits_cancelled
  FROM rr_status;
