-- The extension installs on a server that preloads it.
CREATE EXTENSION rr_router;

-- Its settings exist with the documented defaults.
SELECT name, setting, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'rr\_router.%' ORDER BY name;

-- Misspelt settings in the reserved prefix are refused.
SET rr_router.no_such_setting = 1;

-- Every function has a comment and deliberate markings.
SELECT p.oid::regprocedure AS function,
       p.proisstrict AS strict, p.provolatile AS volatility,
       p.proparallel AS parallel, p.proretset AS returns_set,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
  FROM pg_proc p
  JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'rr_router'
 ORDER BY 1::text;

-- Every view has a comment.
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS has_comment
  FROM pg_class c
  JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'rr_router'
 WHERE c.relkind = 'v'
 ORDER BY 1;
