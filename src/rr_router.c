/*-------------------------------------------------------------------------
 *
 * rr_router.c
 *	  Module entry point: settings, hooks and the background worker.
 *
 * rr_router must be preloaded (shared_preload_libraries): it needs shared
 * memory, a background worker and a hook in the startup process.  Loaded
 * any other way (CREATE EXTENSION alone), _PG_init does nothing and every
 * SQL function raises an error that says so.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/rr_router.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "commit_lsn.h"
#include "http.h"
#include "redo_hook.h"
#include "rr_router.h"
#include "shmem.h"
#include "statement.h"
#include "worker.h"

PG_MODULE_MAGIC;

/* Settings; see the README for their meaning. */
bool		rr_replica_reads = true;
int			rr_wait_timeout = 1000;
int			rr_max_staleness = 1000;
int			rr_sample_interval = 100;
int			rr_heartbeat_interval = 1000;
int			rr_history_size = 9000;
bool		rr_report_commit_lsn = false;
char	   *rr_last_commit_lsn_setting = NULL;
char	   *rr_last_commit_token_setting = NULL;
int			rr_http_port = 0;
char	   *rr_http_listen_addresses = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* shmem_request_hook: our memory and lock, then whoever came before. */
static void
rr_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	rr_shmem_request();
}

/* shmem_startup_hook: whoever came before, then our memory. */
static void
rr_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	rr_shmem_startup();
}

/* Define the rr_router.* settings. */
static void
define_settings(void)
{
	DefineCustomBoolVariable("rr_router.replica_reads",
							 "Allows reads on this replica; off makes every freshness check and wait answer false.",
							 "The kill switch: turn it off to send all reads to the primary.",
							 &rr_replica_reads,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.wait_timeout",
							"Sets how long rr_wait_for_lsn() waits when no timeout is passed, from 0 (check without waiting) to INT_MAX ms.",
							NULL,
							&rr_wait_timeout,
							1000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.max_staleness",
							"Sets the staleness bound rr_is_fresh() uses when none is passed, from 0 to INT_MAX ms.",
							NULL,
							&rr_max_staleness,
							1000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.sample_interval",
							"Sets how often the worker samples replication progress, from 1 ms to 1 min.",
							NULL,
							&rr_sample_interval,
							100, 1, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.heartbeat_interval",
							"Sets how often the worker on a primary writes a heartbeat into WAL, from 0 (off) to 1 h.",
							NULL,
							&rr_heartbeat_interval,
							1000, 0, 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.history_size",
							"Sets how many samples the lag history keeps, from 10 to 1000000.",
							NULL,
							&rr_history_size,
							9000, 10, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("rr_router.report_commit_lsn",
							 "Reports this session's newest causality token to the client in \"rr_router.last_commit_lsn\" and \"rr_router.last_commit_token\".",
							 "Reported as ParameterStatus messages, at most once per round trip, with the ReadyForQuery that ends it.",
							 &rr_report_commit_lsn,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable(RR_COMMIT_LSN_PARAMETER,
							   "Shows the end LSN of this session's newest commit, as reported to the client.",
							   "Set by commits while \"rr_router.report_commit_lsn\" is on; setting it changes what is shown, not rr_last_commit_lsn().",
							   &rr_last_commit_lsn_setting,
							   "",
							   PGC_USERSET,
							   GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable(RR_COMMIT_TOKEN_PARAMETER,
							   "Shows the causality token (timeline:LSN) of this session's newest commit, as reported to the client.",
							   "Set by commits while \"rr_router.report_commit_lsn\" is on; setting it changes what is shown, not rr_last_commit_token().",
							   &rr_last_commit_token_setting,
							   "",
							   PGC_USERSET,
							   GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("rr_router.http_port",
							"Sets the TCP port of the HTTP health and metrics endpoint, from 1 to 65535, or 0 (the default) to serve none.",
							"The endpoint has no authentication: bind it only to trusted addresses.",
							&rr_http_port,
							0, 0, 65535,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("rr_router.http_listen_addresses",
							   "Sets the comma-separated addresses the HTTP endpoint listens on, \"*\" for all.",
							   NULL,
							   &rr_http_listen_addresses,
							   "127.0.0.1",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("rr_router");
}

/*
 * Module load: settings, shared memory, redo hook, commit callback,
 * statement hooks, worker.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	define_settings();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rr_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rr_shmem_startup_hook;

	rr_install_redo_hook();
	rr_install_commit_callback();
	rr_install_statement_hooks();
	rr_register_worker();
}

/* Raise the documented error unless the library was preloaded. */
void
rr_check_loaded(void)
{
	if (rr_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rr_router must be loaded via \"shared_preload_libraries\""),
				 errhint("Add rr_router to \"shared_preload_libraries\" and restart the server.")));
}

/* An interval Datum of 'usecs' microseconds. */
Datum
rr_usecs_interval(int64 usecs)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = usecs;
	return IntervalPGetDatum(iv);
}

/* Is the kill switch on, as published by the worker and as set here? */
bool
rr_replica_reads_on(void)
{
	return rr_replica_reads &&
		pg_atomic_read_u32(&rr_shared->replica_reads) != 0;
}
