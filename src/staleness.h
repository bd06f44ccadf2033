/*-------------------------------------------------------------------------
 *
 * staleness.h
 *	  The staleness bound: how far this server's data may be behind.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/staleness.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_STALENESS_H
#define RR_STALENESS_H

#include "datatype/timestamp.h"

/* Startup process: the data is now current as of primary time 't' (0: no news). */
extern void rr_note_primary_time(TimestampTz t);

/*
 * Staleness bound at 'now' in microseconds (0 on a primary), and the primary
 * time it is measured from (0 on a primary); false while unknown.
 */
extern bool rr_current_staleness(TimestampTz now, int64 *staleness,
								 TimestampTz *as_of);

#endif							/* RR_STALENESS_H */
