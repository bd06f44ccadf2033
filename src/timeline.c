/*-------------------------------------------------------------------------
 *
 * timeline.c
 *	  Failover-safe causality tokens: rr_wait_for_token(), which judges a
 *	  "TLI:LSN" token against this server's timeline history and waits
 *	  for its LSN like rr_wait_for_lsn().
 *
 * An LSN alone cannot say whether a write survived a failover: a promoted
 * asynchronous replica starts a new timeline at the end of the WAL it had
 * (the switch point), and its WAL soon passes the old primary's LSNs, so a
 * plain LSN wait answers true for a write that was lost.  A token also
 * names the timeline the commit was written on.  This server's timeline
 * history -- for each ancestor timeline, the LSN where it ended -- then
 * tells:
 *
 *	- the token's timeline is this server's current timeline, or an ancestor
 *	  that ended at or after the token's LSN: the write is part of this
 *	  server's history, and visible once replay reaches the LSN (on a
 *	  primary, a token of its own timeline beyond the end of its WAL is not:
 *	  RR001);
 *	- the token's timeline ended before the token's LSN -- an ancestor, or
 *	  on a replica its own timeline, ended by a newer timeline whose history
 *	  file is in pg_wal (see NOTES): the write was lost in a failover and
 *	  will never be here (RR001);
 *	- the token's timeline is not in the history at all: a timeline this
 *	  server has not reached yet, or a sibling branch it never will.  Nothing
 *	  here tells which, so a replica waits (false at the timeout), and a
 *	  primary, which will never reach another timeline, raises RR001.
 *
 * A record ending exactly at a switch point survived: the new timeline
 * begins at the end of the last record the promoted server had.
 *
 * NOTES
 *	  Backend-local state only; no shared memory or locks.
 *
 *	  The history of timeline N is the file pg_wal/<N>.history, which lists
 *	  every ancestor and where it ended; timeline 1 has none.  A primary
 *	  wrote its own at promotion; a replica has the file of every timeline
 *	  it follows before it switches to it (the walreceiver fetches it from
 *	  the upstream, the startup process restores it from the archive and
 *	  keeps it in pg_wal), and the files never change once written.
 *
 *	  A replica judges by more than the history of the timeline it is on.
 *	  When a replica that was not the furthest ahead is promoted, a replica
 *	  that had already replayed past the switch point on the old timeline
 *	  cannot follow ("forked off current database system timeline ... before
 *	  current recovery point") and stays a hot standby on the old timeline,
 *	  with WAL that no other server has; an archive-only standby that
 *	  restored the old timeline's WAL past the switch point does the same.
 *	  Its own timeline's history cannot tell that a token past the switch
 *	  point was lost -- but the new timeline's history file is in its
 *	  pg_wal all the same.  So a replica judges by the history of the newest
 *	  timeline in pg_wal that descends from its own (what
 *	  recovery_target_timeline = 'latest' would follow, chosen as core's
 *	  findNewestTimeLine() and rescanLatestTimeLine() choose), and treats a
 *	  token of a timeline after its own in that history as one it has not
 *	  reached.  The same choice covers a replica whose own timeline's file
 *	  is missing (restored on timeline 2 with recovery_target_timeline = 3,
 *	  it restores only 3's history).  A primary judges by its own history
 *	  and, for its own timeline, by the end of its WAL.
 *
 *	  Each backend parses the chosen history once, keeps it in
 *	  TopMemoryContext and parses again only when the server's timeline
 *	  changes or, on a replica, when the history file of the timeline after
 *	  the newest one seen appears (one stat() per check).
 *	  Core's readTimeLineHistory() is not used: in a backend it would treat a
 *	  missing file as "no ancestors" (making every surviving token of an
 *	  older timeline look unknown) and raises FATAL on a malformed file; here
 *	  both are an ERROR of the call that needed the history.
 *
 *	  Which timeline a replica is on matters at the moment of a switch.
 *	  The startup process moves replayEndTLI to the new timeline (under its
 *	  info_lck) before it replays the first record of that timeline (the
 *	  record that makes the switch); the core's replay position moves under
 *	  the same lock after the record, and the redo hook publishes its own,
 *	  when it wakes a waiter, after the record and behind a write barrier
 *	  (rr_wake_replayed()).  token_reachable() reads
 *	  the replay position first and the timeline after it (with a read
 *	  barrier between), and answers "reached" only from that pair: it never
 *	  pairs WAL replayed on a new timeline with the history of the old one,
 *	  so it cannot take the new timeline's WAL past a lost token's LSN for
 *	  the lost write.  wait.c's own look at the replay position comes later
 *	  and can only be further on.
 *
 *	  The wait itself is wait.c's, with token_reachable() as its extra
 *	  check, run every time the waiter looks at the world: when it starts,
 *	  when replay passes the token's LSN, and when the worker wakes every
 *	  waiter (kill switch, promotion, recovery conflict, timeline switch).
 *	  A token whose timeline is not in the history and cannot join it any
 *	  more (an older timeline, or one whose LSN replay has passed on another
 *	  branch) would be woken by every replayed record to no purpose; its
 *	  queue target becomes RR_NEVER_REPLAYED instead, so that only those
 *	  wake-ups of every waiter, and its timeout, reach it.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/timeline.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "rr_router.h"
#include "timeline.h"
#include "wait.h"

/*
 * A queue target that replay never reaches: the waiter is woken only when
 * every waiter is (PG_UINT64_MAX itself means "nobody waits" to wait.c).
 */
#define RR_NEVER_REPLAYED	(PG_UINT64_MAX - 1)

/* A token wait: what rr_wait_for_target() follows, and the token. */
typedef struct RRTokenWait
{
	RRWaitSpec	spec;			/* spec.target may become RR_NEVER_REPLAYED */
	RRToken		token;
	const char *given;			/* the token as the caller wrote it */
} RRTokenWait;

/* One timeline of a history: it covers [begin, end); end Invalid = open. */
typedef struct RRTimeLine
{
	TimeLineID	tli;
	XLogRecPtr	begin;
	XLogRecPtr	end;
} RRTimeLine;

/*
 * The history tokens are judged against, chosen for the server timeline
 * 'history_for' (0 while none has been chosen) in or out of recovery: the history of timeline
 * history_tli, oldest first, its last entry history_tli itself.
 * history_tli is history_for, or on a replica the newest timeline in
 * pg_wal that descends from it (see NOTES); history[server_pos] is
 * history_for's entry.  probed_tli is the newest timeline whose history
 * file the last choice found in pg_wal (descendant or not): a replica
 * chooses again only once the file of probed_tli + 1 appears.
 */
static TimeLineID history_for = 0;
static bool history_in_recovery = false;
static TimeLineID history_tli = 0;
static TimeLineID probed_tli = 0;
static RRTimeLine *history = NULL;
static int	history_len = 0;
static int	server_pos = 0;

/* Longest part of a malformed token echoed in the error message. */
#define RR_TOKEN_ECHO_MAX	64

/* Raise the 22P02 error of a malformed token ('zero': its timeline is 0). */
static void
bad_token(const char *str, bool zero)
{
	size_t		len = strlen(str);
	const char *shown = str;

	/* an over-long token is echoed only in part: it may be anything */
	if (len > RR_TOKEN_ECHO_MAX)
		shown = psprintf("%.*s...",
						 pg_mbcliplen(str, len, RR_TOKEN_ECHO_MAX), str);

	if (zero)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid causality token: \"%s\"", shown),
				 errdetail("Timeline IDs start at 1.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid causality token: \"%s\"", shown),
			 errdetail("A causality token is a timeline ID from 1 to 4294967295 in decimal without leading zeros, a colon and an LSN, as in \"1:0/3000148\".")));
}

/*
 * Parse "TLI:LSN": a decimal timeline ID from 1 to 4294967295 without
 * leading zeros (as rr_last_commit_token() writes it), a colon and an LSN
 * as pg_lsn reads it (hex/hex, at most 8 digits each, leading zeros
 * allowed as pg_lsn allows them), nothing else.
 */
void
rr_parse_token(const char *str, RRToken *token)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	const char *p = str;
	size_t		ndigits;
	size_t		len1;
	size_t		len2;
	uint64		tli = 0;

	ndigits = strspn(p, "0123456789");
	if (ndigits < 1 || ndigits > 10 || p[ndigits] != ':')
		bad_token(str, false);
	if (ndigits == 1 && p[0] == '0')
		bad_token(str, true);
	if (p[0] == '0')
		bad_token(str, false);	/* a leading zero */
	for (size_t i = 0; i < ndigits; i++)
		tli = tli * 10 + (p[i] - '0');
	if (tli > PG_UINT32_MAX)
		bad_token(str, false);

	p += ndigits + 1;
	len1 = strspn(p, hex);
	if (len1 < 1 || len1 > 8 || p[len1] != '/')
		bad_token(str, false);
	len2 = strspn(p + len1 + 1, hex);
	if (len2 < 1 || len2 > 8 || p[len1 + 1 + len2] != '\0')
		bad_token(str, false);

	token->tli = (TimeLineID) tli;
	token->lsn = ((uint64) strtoul(p, NULL, 16) << 32) |
		(uint64) strtoul(p + len1 + 1, NULL, 16);
}

/* The timeline this server's data follows now; see timeline.h. */
TimeLineID
rr_server_timeline(bool *in_recovery)
{
	TimeLineID	tli;

	*in_recovery = RecoveryInProgress();
	if (!*in_recovery)
		return GetWALInsertionTimeLine();
	(void) GetCurrentReplayRecPtr(&tli);
	return tli;
}

/* Raise the error for a line of a history file that cannot be used. */
static void
bad_history(const char *path, char *line)
{
	line[strcspn(line, "\r\n")] = '\0';
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid timeline history file \"%s\"", path),
			 errdetail("Invalid line: \"%s\".", line),
			 errhint("Each line must hold a timeline ID below the file's own, a tab and its switch point, in increasing order of timeline.")));
}

/*
 * Is the history file of timeline 'tli' in pg_wal?  One stat(); core's
 * existsTimeLineHistory() opens the file and raises FATAL on errors other
 * than a missing file, which here are an ERROR of the call.
 */
static bool
history_file_exists(TimeLineID tli)
{
	char		path[MAXPGPATH];
	struct stat st;

	if (tli == 1)
		return false;			/* timeline 1 has no history file */
	TLHistoryFilePath(path, tli);
	if (stat(path, &st) == 0)
		return true;
	if (errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	return false;
}

/*
 * Read the history of timeline 'tli' into a palloc'd array in the current
 * memory context, oldest first, tli itself last and open-ended; sets *len.
 * The file format is core's (see readTimeLineHistory()): one
 * "parentTLI <tab> switchpoint <tab> reason" line per ancestor, oldest
 * first, blank lines and # comments allowed.  'server_tli' is only for the
 * detail of the error raised when the file is missing.
 */
static RRTimeLine *
read_history(TimeLineID tli, TimeLineID server_tli, int *len)
{
	char		path[MAXPGPATH];
	FILE	   *fd;
	RRTimeLine *entries;
	int			n = 0;
	int			allocated = 8;
	XLogRecPtr	prevend = InvalidXLogRecPtr;

	entries = palloc(allocated * sizeof(RRTimeLine));
	if (tli != 1)
	{
		TimeLineID	lasttli = 0;

		TLHistoryFilePath(path, tli);
		fd = AllocateFile(path, "r");
		if (fd == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open timeline history file \"%s\": %m", path),
					 errdetail("Causality tokens are judged against the history of this server's timeline %u, read from its own history file or from that of a timeline that descends from it.",
							   server_tli)));
		for (;;)
		{
			char		line[MAXPGPATH];
			char	   *ptr;
			TimeLineID	parent;
			uint32		hi;
			uint32		lo;
			int			nfields;

			pgstat_report_wait_start(WAIT_EVENT_TIMELINE_HISTORY_READ);
			ptr = fgets(line, sizeof(line), fd);
			pgstat_report_wait_end();
			if (ptr == NULL)
			{
				if (ferror(fd))
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("could not read timeline history file \"%s\": %m", path)));
				break;
			}
			while (*ptr && isspace((unsigned char) *ptr))
				ptr++;
			if (*ptr == '\0' || *ptr == '#')
				continue;

			nfields = sscanf(line, "%u\t%X/%X", &parent, &hi, &lo);
			if (nfields != 3)
				bad_history(path, line);
			if ((n > 0 && parent <= lasttli) || parent >= tli)
				bad_history(path, line);
			lasttli = parent;

			if (n + 1 >= allocated)
			{
				allocated *= 2;
				entries = repalloc(entries, allocated * sizeof(RRTimeLine));
			}
			entries[n].tli = parent;
			entries[n].begin = prevend;
			entries[n].end = ((uint64) hi << 32) | lo;
			prevend = entries[n].end;
			n++;
		}
		FreeFile(fd);
	}

	/* the timeline itself, open-ended */
	entries[n].tli = tli;
	entries[n].begin = prevend;
	entries[n].end = InvalidXLogRecPtr;
	*len = n + 1;
	return entries;
}

/*
 * Choose the history to judge tokens against on a server whose data
 * follows timeline 'server_tli', and cache it in TopMemoryContext.
 *
 * A primary's is the history of its own timeline.  A replica's is the
 * history of the newest timeline in pg_wal -- probing server_tli + 1,
 * + 2, ... as core's findNewestTimeLine() does -- if that timeline
 * descends from server_tli: what recovery_target_timeline = 'latest'
 * follows (rescanLatestTimeLine() ignores a newest timeline that does not
 * descend from the current one, and so does this).  Otherwise, or when
 * there is no newer timeline, it is the history of server_tli itself.
 */
static void
choose_history(TimeLineID server_tli, bool in_recovery)
{
	TimeLineID	newest = server_tli;
	TimeLineID	chosen = server_tli;
	RRTimeLine *entries = NULL;
	int			n = 0;
	int			pos = -1;

	/* an error below leaves no cache rather than a half-chosen one */
	history_for = 0;
	if (history)
		pfree(history);
	history = NULL;
	history_len = 0;

	if (in_recovery)
		while (newest < PG_UINT32_MAX && history_file_exists(newest + 1))
			newest++;

	if (newest != server_tli)
	{
		entries = read_history(newest, server_tli, &n);
		for (int i = 0; i < n - 1; i++)
		{
			if (entries[i].tli == server_tli)
				pos = i;
		}
		if (pos >= 0)
			chosen = newest;
		else
		{
			pfree(entries);		/* not a descendant: ignored */
			entries = NULL;
		}
	}
	if (entries == NULL)
	{
		entries = read_history(server_tli, server_tli, &n);
		pos = n - 1;
	}

	history = MemoryContextAlloc(TopMemoryContext, n * sizeof(RRTimeLine));
	memcpy(history, entries, n * sizeof(RRTimeLine));
	pfree(entries);
	history_len = n;
	history_tli = chosen;
	server_pos = pos;
	probed_tli = newest;
	history_in_recovery = in_recovery;
	history_for = server_tli;
}

/* Judge a token against this server's history; see timeline.h. */
RRTokenVerdict
rr_token_verdict(const RRToken *token, TimeLineID server_tli,
				 bool in_recovery, RRTokenLoss *loss)
{
	/*
	 * A replica re-checks for a newer timeline's history file each time:
	 * the walreceiver fetches one from the upstream, the startup process
	 * restores one from the archive, at any moment.  One stat().
	 */
	if (server_tli != history_for || in_recovery != history_in_recovery ||
		(in_recovery && probed_tli < PG_UINT32_MAX &&
		 history_file_exists(probed_tli + 1)))
		choose_history(server_tli, in_recovery);

	loss->server_tli = server_tli;
	loss->history_tli = history_tli;
	loss->switchpoint = InvalidXLogRecPtr;
	loss->wal_end = InvalidXLogRecPtr;

	for (int i = 0; i < history_len; i++)
	{
		if (history[i].tli != token->tli)
			continue;
		if (!XLogRecPtrIsInvalid(history[i].end) && token->lsn > history[i].end)
		{
			loss->switchpoint = history[i].end;
			return RR_TOKEN_LOST;
		}
		/* a descendant this server has not switched to yet is unknown */
		if (i > server_pos)
			return RR_TOKEN_UNKNOWN;

		/*
		 * A primary's own timeline goes only as far as its WAL: a token
		 * beyond that (a tail lost in a crash with synchronous_commit off,
		 * the server restarted on the same timeline; or a made-up token)
		 * is not in its history.
		 */
		if (!in_recovery && i == server_pos)
		{
			XLogRecPtr	insert = GetXLogInsertRecPtr();

			if (token->lsn > insert)
			{
				loss->wal_end = insert;
				return RR_TOKEN_LOST;
			}
		}
		return RR_TOKEN_IN_HISTORY;
	}
	return RR_TOKEN_UNKNOWN;
}

/*
 * The hint of RR001, given inside its error report: a primary has nowhere
 * better to send the reader.
 */
static int
lost_token_hint(bool in_recovery)
{
	if (in_recovery)
		return errhint("Read from the primary, and tell the user that the write may have been lost.");
	return errhint("Tell the user that the write may have been lost: the primary's history does not contain it.");
}

/* Raise RR001 for a token this server's history has lost; see timeline.h. */
void
rr_report_lost_token(const char *given, const RRToken *token,
					 const RRTokenLoss *loss, bool in_recovery)
{
	char		at[RR_LSN_BUFSIZE];

	if (!XLogRecPtrIsInvalid(loss->wal_end))
	{
		snprintf(at, sizeof(at), RR_LSN_FORMAT, LSN_FORMAT_ARGS(loss->wal_end));
		ereport(ERROR,
				(errcode(ERRCODE_RR_TOKEN_LOST),
				 errmsg("causality token refers to WAL lost in a failover"),
				 errdetail("This server's WAL on its timeline %u ends at %s, before the LSN of the token \"%s\".",
						   loss->server_tli, at, given),
				 lost_token_hint(in_recovery)));
	}
	if (!XLogRecPtrIsInvalid(loss->switchpoint))
	{
		snprintf(at, sizeof(at), RR_LSN_FORMAT, LSN_FORMAT_ARGS(loss->switchpoint));
		if (loss->history_tli == loss->server_tli)
			ereport(ERROR,
					(errcode(ERRCODE_RR_TOKEN_LOST),
					 errmsg("causality token refers to WAL lost in a failover"),
					 errdetail("In the history of this server's timeline %u, timeline %u ended at %s, before the LSN of the token \"%s\".",
							   loss->server_tli, token->tli, at, given),
					 lost_token_hint(in_recovery)));
		ereport(ERROR,
				(errcode(ERRCODE_RR_TOKEN_LOST),
				 errmsg("causality token refers to WAL lost in a failover"),
				 errdetail("In the history of timeline %u, the newest that descends from this server's timeline %u, timeline %u ended at %s, before the LSN of the token \"%s\".",
						   loss->history_tli, loss->server_tli, token->tli, at, given),
				 lost_token_hint(in_recovery)));
	}
	ereport(ERROR,
			(errcode(ERRCODE_RR_TOKEN_LOST),
			 errmsg("causality token refers to WAL lost in a failover"),
			 errdetail("Timeline %u of the token \"%s\" is not in the history of this server's timeline %u.",
					   token->tli, given, loss->server_tli),
			 lost_token_hint(in_recovery)));
}

/*
 * The extra check of a token wait (an RRWaitCheck): raises RR001 when this
 * server's history has lost the token, or, on a primary, does not contain
 * it; true when the token is in the history and, on a replica, replay has
 * passed its LSN; false to keep waiting.
 */
static bool
token_reachable(void *arg)
{
	RRTokenWait *tw = (RRTokenWait *) arg;
	XLogRecPtr	replayed = rr_replayed_upto();
	RRTokenLoss loss;
	TimeLineID	tli;
	bool		in_recovery;

	/* the timeline only after the replay position: see NOTES */
	pg_read_barrier();
	tli = rr_server_timeline(&in_recovery);

	switch (rr_token_verdict(&tw->token, tli, in_recovery, &loss))
	{
		case RR_TOKEN_IN_HISTORY:
			tw->spec.target = tw->token.lsn;	/* in case it was moved */
			return !in_recovery || replayed >= tw->token.lsn;
		case RR_TOKEN_LOST:
			rr_report_lost_token(tw->given, &tw->token, &loss, in_recovery);
			break;
		case RR_TOKEN_UNKNOWN:
			if (!in_recovery)
				rr_report_lost_token(tw->given, &tw->token, &loss, false);
			if (tw->token.tli < tli || replayed >= tw->token.lsn)
				tw->spec.target = RR_NEVER_REPLAYED;
			break;
	}
	return false;
}

PG_FUNCTION_INFO_V1(rr_wait_for_token);

/*
 * rr_wait_for_token(token text, timeout_ms integer DEFAULT NULL) -> boolean
 *
 * rr_wait_for_lsn() for a "TLI:LSN" token, and ERROR RR001 when this
 * server's timeline history shows that the token's write was lost.
 */
Datum
rr_wait_for_token(PG_FUNCTION_ARGS)
{
	RRTokenWait tw = {0};

	rr_check_loaded();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	tw.given = text_to_cstring(PG_GETARG_TEXT_PP(0));
	rr_parse_token(tw.given, &tw.token);
	tw.token.lsn = rr_normalize_target(tw.token.lsn);

	tw.spec.target = tw.token.lsn;
	tw.spec.timeout_ms = rr_wait_timeout_arg(fcinfo, 1);
	tw.spec.check = token_reachable;
	tw.spec.check_arg = &tw;

	PG_RETURN_BOOL(rr_wait_for_target(fcinfo, "rr_wait_for_token", &tw.spec));
}
