-- The functions of the contract are for everyone; the views for pg_monitor.
CREATE ROLE rr_app LOGIN;
CREATE ROLE rr_watcher LOGIN IN ROLE pg_monitor;

SET ROLE rr_app;
SELECT rr_wait_for_lsn('0/1');
SELECT rr_last_commit_lsn() IS NOT NULL AS has_token;
SELECT rr_last_commit_token() IS NOT NULL AS has_timeline_token;
SELECT rr_wait_for_token('1:0/1');
SELECT count(*) FROM rr_status;
SELECT count(*) FROM rr_waiters;
SELECT count(*) FROM rr_status_data();
RESET ROLE;

SET ROLE rr_watcher;
SELECT role FROM rr_status;
SELECT count(*) FROM rr_waiters;
RESET ROLE;

-- A hostile search_path cannot capture the views' functions.
CREATE SCHEMA evil;
CREATE FUNCTION evil.rr_status_data() RETURNS SETOF record
  LANGUAGE sql AS $$ SELECT NULL::record WHERE false $$;
SET search_path = evil, public;
SELECT role FROM public.rr_status;
RESET search_path;
DROP SCHEMA evil CASCADE;

DROP ROLE rr_app;
DROP ROLE rr_watcher;

-- rr_reset_stats() is not for PUBLIC; pg_monitor can read the lag views.
CREATE ROLE rr_app2 LOGIN;
CREATE ROLE rr_watcher2 LOGIN IN ROLE pg_monitor;
SET ROLE rr_app2;
SELECT rr_reset_stats();
SELECT rr_staleness() AS staleness, rr_is_fresh() AS fresh;
SELECT count(*) FROM rr_lag_history;
SELECT count(*) FROM rr_lag_stats;
RESET ROLE;
SET ROLE rr_watcher2;
SELECT period FROM rr_lag_stats ORDER BY period;
SELECT rr_reset_stats();
RESET ROLE;
DROP ROLE rr_app2;
DROP ROLE rr_watcher2;
