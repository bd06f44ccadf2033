/*-------------------------------------------------------------------------
 *
 * heartbeat.c
 *	  The WAL heartbeat, and reading the primary's clock out of replayed WAL.
 *
 * A replica's data is current as of a primary time T when every
 * transaction that finished on the primary before T is visible.  Certain
 * WAL records prove such a T: the primary reads its clock *before* inserting
 * them, so every transaction that had finished by then had already inserted
 * its commit record, earlier in WAL.  Once a replica has replayed such a
 * record, its data is current as of the time written in it.  Two kinds of
 * record carry that time:
 *
 *	- commit and abort records (xact_time), which come for free while the
 *	  primary writes;
 *	- the heartbeat: a non-transactional logical message with prefix
 *	  "rr_router" whose payload is the primary's clock, written by the worker
 *	  on the primary every rr_router.heartbeat_interval, so that an idle
 *	  primary still moves T forward.
 *
 * The heartbeat is an ordinary core record (resource manager "LogicalMessage",
 * whose redo does nothing), so replicas without rr_router replay it.  It is
 * written for database 0, which no logical decoding slot belongs to, and
 * marked unimportant so that it does not by itself make an idle primary
 * checkpoint or log standby snapshots.
 *
 * NOTES
 *	  No shared state here: the worker calls rr_write_heartbeat(), the
 *	  startup process calls rr_record_primary_time() from the redo hook.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/heartbeat.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "replication/message.h"
#include "utils/timestamp.h"

#include "heartbeat.h"

#define RR_HEARTBEAT_PREFIX "rr_router"

/* Write and flush one heartbeat carrying this primary's clock. */
XLogRecPtr
rr_write_heartbeat(void)
{
	xl_logical_message xlrec;
	TimestampTz now;
	XLogRecPtr	end;

	xlrec.dbId = InvalidOid;
	xlrec.transactional = false;
	xlrec.prefix_size = sizeof(RR_HEARTBEAT_PREFIX);
	xlrec.message_size = sizeof(TimestampTz);

	/* Read the clock before inserting: that is what makes it a bound. */
	now = GetCurrentTimestamp();

	XLogBeginInsert();
	XLogRegisterData((char *) &xlrec, SizeOfLogicalMessage);
	XLogRegisterData(RR_HEARTBEAT_PREFIX, sizeof(RR_HEARTBEAT_PREFIX));
	XLogRegisterData((char *) &now, sizeof(now));
	XLogSetRecordFlags(XLOG_MARK_UNIMPORTANT);
	end = XLogInsert(RM_LOGICALMSG_ID, XLOG_LOGICAL_MESSAGE);

	/* Replicas receive only flushed WAL. */
	XLogFlush(end);
	return end;
}

/* The primary time a replayed record proves the data current as of, or 0. */
TimestampTz
rr_record_primary_time(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;

	if (XLogRecGetRmid(record) == RM_XACT_ID)
	{
		switch (info & XLOG_XACT_OPMASK)
		{
			case XLOG_XACT_COMMIT:
			case XLOG_XACT_COMMIT_PREPARED:
				return ((xl_xact_commit *) XLogRecGetData(record))->xact_time;
			case XLOG_XACT_ABORT:
			case XLOG_XACT_ABORT_PREPARED:
				return ((xl_xact_abort *) XLogRecGetData(record))->xact_time;
		}
		return 0;
	}

	if (XLogRecGetRmid(record) == RM_LOGICALMSG_ID &&
		info == XLOG_LOGICAL_MESSAGE &&
		XLogRecGetDataLen(record) == SizeOfLogicalMessage +
		sizeof(RR_HEARTBEAT_PREFIX) + sizeof(TimestampTz))
	{
		xl_logical_message *msg = (xl_logical_message *) XLogRecGetData(record);
		TimestampTz sent;

		/* dbId 0: pg_logical_emit_message() cannot forge a heartbeat. */
		if (msg->dbId != InvalidOid || msg->transactional ||
			msg->prefix_size != sizeof(RR_HEARTBEAT_PREFIX) ||
			msg->message_size != sizeof(TimestampTz) ||
			memcmp(msg->message, RR_HEARTBEAT_PREFIX,
				   sizeof(RR_HEARTBEAT_PREFIX)) != 0)
			return 0;
		memcpy(&sent, msg->message + sizeof(RR_HEARTBEAT_PREFIX), sizeof(sent));
		return sent;
	}
	return 0;
}
