/*-------------------------------------------------------------------------
 *
 * rr_router.h
 *	  Settings and entry points shared by rr_router's source files.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/rr_router.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_ROUTER_H
#define RR_ROUTER_H

#include "postgres.h"

/* Settings (GUCs), defined in rr_router.c; times are in milliseconds. */
extern bool rr_replica_reads;
extern int	rr_wait_timeout;
extern int	rr_max_staleness;
extern int	rr_sample_interval;
extern int	rr_heartbeat_interval;
extern int	rr_history_size;
extern bool rr_report_commit_lsn;

/*
 * The display settings rr_router.last_commit_lsn and
 * rr_router.last_commit_token (GUC_REPORT; see commit_lsn.c).
 */
extern char *rr_last_commit_lsn_setting;
extern char *rr_last_commit_token_setting;

/*
 * Is the kill switch on?  The worker publishes it in shared memory on
 * reload; a backend's own copy of the setting is consulted too, so that it
 * works even without a worker.
 */
extern bool rr_replica_reads_on(void);

/* Raises the "not preloaded" error unless shared memory is attached. */
extern void rr_check_loaded(void);

/* An interval Datum of 'usecs' microseconds. */
extern Datum rr_usecs_interval(int64 usecs);

#endif							/* RR_ROUTER_H */
