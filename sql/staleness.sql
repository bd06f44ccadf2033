-- On a primary the data is never stale.
SELECT rr_staleness();
SELECT rr_is_fresh();
SELECT rr_is_fresh('0');
SELECT rr_is_fresh(NULL);
SELECT rr_is_fresh('1 year 2 mons');

-- Bad bounds are refused, on a primary too.
SELECT rr_is_fresh('-1 ms');
SELECT rr_is_fresh('1 day -25 hours');
SELECT rr_is_fresh('-178000000 years');
SELECT rr_is_fresh('soon');
SET rr_router.max_staleness = '-1s';
SET rr_router.max_staleness = '250ms';
SHOW rr_router.max_staleness;
RESET rr_router.max_staleness;

-- Huge but valid bounds are fine.
SELECT rr_is_fresh('178000000 years');

-- Inside a REPEATABLE READ transaction block the snapshot may be older than
-- what the answer is about; in autocommit each statement is fresh.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT rr_is_fresh();
ROLLBACK;
SET default_transaction_isolation = 'repeatable read';
SELECT rr_is_fresh() AS autocommit_fresh;
SELECT rr_wait_for_lsn('0/1') AS autocommit_wait;
-- Parallel workers run in a transaction block of their own: in autocommit
-- they must answer like their leader, inside a block refuse like it.
CREATE TABLE fresh_big AS SELECT g FROM generate_series(1, 20000) g;
ANALYZE fresh_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM fresh_big WHERE rr_is_fresh();
SELECT count(*) FROM fresh_big WHERE rr_is_fresh();
BEGIN;
SELECT 1;
SELECT count(*) FROM fresh_big WHERE rr_is_fresh();
ROLLBACK;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
DROP TABLE fresh_big;
RESET default_transaction_isolation;
