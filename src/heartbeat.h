/*-------------------------------------------------------------------------
 *
 * heartbeat.h
 *	  The WAL heartbeat: the primary's clock, carried to replicas in WAL.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/heartbeat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RR_HEARTBEAT_H
#define RR_HEARTBEAT_H

#include "access/xlogreader.h"
#include "datatype/timestamp.h"

/* Primary: write and flush one heartbeat record; returns its end. */
extern XLogRecPtr rr_write_heartbeat(void);

/*
 * Replica: the primary time a replayed record proves the data current as
 * of (a heartbeat's timestamp, a commit's or abort's xact_time), or 0.
 */
extern TimestampTz rr_record_primary_time(XLogReaderState *record);

#endif							/* RR_HEARTBEAT_H */
