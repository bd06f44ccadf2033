-- An installation of 1.0 updates to 1.1 in place.  A fresh install of 1.1
-- runs the 1.0 script and then the same update script, so both must end
-- with the same objects, markings, comments and privileges.

-- Everything that identifies the extension's functions and views.
\set ext_objects 'SELECT string_agg(format(''%s strict=%s volatile=%s parallel=%s acl=%s comment=%s'', p.oid::regprocedure, p.proisstrict, p.provolatile, p.proparallel, p.proacl, obj_description(p.oid, ''pg_proc'')), E''\n'' ORDER BY p.oid::regprocedure::text) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = ''pg_proc''::regclass JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = ''rr_router'''
\set ext_views 'SELECT string_agg(format(''%s acl=%s comment=%s'', c.relname, c.relacl, obj_description(c.oid, ''pg_class'')), E''\n'' ORDER BY c.relname) FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = ''pg_class''::regclass JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = ''rr_router'''

SELECT extversion FROM pg_extension WHERE extname = 'rr_router';
:ext_objects \gset fresh_
:ext_views \gset fresh_views_

DROP EXTENSION rr_router;
CREATE EXTENSION rr_router VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'rr_router';
SELECT proname FROM pg_proc WHERE proname LIKE 'rr\_%token%' ORDER BY 1;

ALTER EXTENSION rr_router UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'rr_router';
SELECT proname FROM pg_proc WHERE proname LIKE 'rr\_%token%' ORDER BY 1;
:ext_objects \gset updated_
:ext_views \gset updated_views_
SELECT :'updated_string_agg' = :'fresh_string_agg' AS same_functions,
       :'updated_views_string_agg' = :'fresh_views_string_agg' AS same_views;

-- Both equal is not enough: both run the same scripts.  What they must be,
-- spelled out: every function's STRICT, volatility (v, s) and PARALLEL
-- (u nsafe, r estricted, s afe) markings, who may run it, and a comment.
SELECT p.oid::regprocedure AS function, p.proisstrict AS strict,
       p.provolatile AS vol, p.proparallel AS par,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
  JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'rr_router'
 ORDER BY p.oid::regprocedure::text;
-- Views: readable by pg_monitor, not by PUBLIC; a comment each.
SELECT c.relname AS view,
       has_table_privilege('pg_monitor', c.oid, 'SELECT') AS pg_monitor,
       has_table_privilege('public', c.oid, 'SELECT') AS public,
       obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c
  JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'rr_router'
 ORDER BY 1;

-- The new functions work in the updated installation.
CREATE TABLE update_t (i int);
INSERT INTO update_t VALUES (1);
SELECT rr_last_commit_token() IS NOT NULL AS has_token;
DROP TABLE update_t;
