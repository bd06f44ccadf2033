/*-------------------------------------------------------------------------
 *
 * http.c
 *	  An optional HTTP endpoint for load balancers and Prometheus, served
 *	  from the rr_router worker and answered from the same shared memory as
 *	  the SQL functions.
 *
 *	  GET /health                         200 while the server runs
 *	  GET /primary                        200 on a primary that accepts
 *	                                      connections (not shutting down)
 *	  GET /replica[?max_staleness=D][&max_lag_bytes=N]
 *	                                      200 on a hot standby that accepts
 *	                                      read-only connections now, within
 *	                                      the bounds, with
 *	                                      rr_router.replica_reads on
 *	  GET /read-only[?...same bounds...]  200 as /primary, or as /replica
 *	  GET /metrics                        Prometheus text exposition
 *
 * Anything else is 503 (not in that state), 400 (bad request or parameter),
 * 404 (unknown path) or 405 (method other than GET or HEAD).  Every answer
 * closes the connection.  A server in recovery that does not accept reads
 * (hot_standby = off, not yet consistent, crash recovery) is never a
 * replica to read from, and a max_lag_bytes bound fails while the primary's
 * position is unknown.
 *
 * NOTES
 *	  Everything here runs in the worker, single-threaded, and never blocks:
 *	  sockets are non-blocking and multiplexed with the worker's latch in one
 *	  WaitEventSet, built once and rebuilt only when the set of sockets
 *	  changes.  The work of one wake-up is bounded whatever clients do: at
 *	  most RR_HTTP_ACCEPT_BATCH connections accepted per listening socket,
 *	  one recv() per client, and only the bytes just received are examined,
 *	  so a flood of connections or a client sending one byte at a time
 *	  cannot keep the worker from sampling, writing heartbeats and watching
 *	  the waiters.  Waiters are not woken from here at all (the startup
 *	  process does it).  Each client gets RR_HTTP_TIMEOUT_MS to send at most
 *	  RR_HTTP_MAX_REQUEST bytes of request head; at most RR_HTTP_MAX_CLIENTS
 *	  are served at once, and a newcomer beyond that displaces the client
 *	  that has waited longest.  An answer is written with one non-blocking
 *	  send (it fits any socket buffer); a client that does not take it loses
 *	  it.  SIGPIPE is ignored in background workers, so a client that has
 *	  gone away costs an EPIPE, not the worker.
 *
 *	  The request head and line are parsed by http_parse.c, which has no
 *	  server dependencies so that test/fuzz can fuzz it on its own.
 *
 *	  Shared data is read as the SQL functions read it: the sample under
 *	  RRShared.mutex, the waiter count under RRShared.lock in shared mode,
 *	  the lag history under its lock (history.c), whether hot standby is
 *	  active under the recovery state's own spinlock (HotStandbyActive());
 *	  no lock is held while talking to a client.
 *
 *	  There is no authentication: bind only to trusted addresses.
 *
 * Copyright (c) 2026, rr_router developers
 *
 * IDENTIFICATION
 *	  src/http.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/pidfile.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "compat.h"
#include "history.h"
#include "http.h"
#include "http_parse.h"
#include "rr_router.h"
#include "shmem.h"
#include "staleness.h"

#define RR_HTTP_MAX_LISTEN		8
#define RR_HTTP_MAX_CLIENTS		32
#define RR_HTTP_MAX_REQUEST		4096
#define RR_HTTP_TIMEOUT_MS		2000

/* Connections accepted per listening socket and wake-up. */
#define RR_HTTP_ACCEPT_BATCH	8

/* Latch, postmaster death, listening sockets and clients. */
#define RR_HTTP_MAX_EVENTS		(RR_HTTP_MAX_LISTEN + RR_HTTP_MAX_CLIENTS + 2)

typedef struct HttpClient
{
	pgsocket	sock;			/* PGINVALID_SOCKET when the slot is free */
	TimestampTz deadline;
	int			len;			/* bytes of request head in buf */
	char		buf[RR_HTTP_MAX_REQUEST + 1];
} HttpClient;

/* The answer to one request. */
typedef struct HttpAnswer
{
	int			status;
	const char *content_type;
	StringInfoData body;
} HttpAnswer;

static pgsocket listen_socks[RR_HTTP_MAX_LISTEN];
static int	nlisten = 0;
static HttpClient clients[RR_HTTP_MAX_CLIENTS];

/*
 * The sockets and the latch to wait on, and whether a socket has been opened
 * or closed since it was built.
 */
static WaitEventSet *wait_set = NULL;
static bool wait_set_stale = true;

/* Everything one call of rr_http_wait() allocates; reset on return. */
static MemoryContext http_cxt = NULL;

/* Open one listening socket per address of 'host'; log what fails. */
static void
listen_on(const char *host, const char *port)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	int			rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;

	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
	if (rc != 0)
	{
		ereport(LOG,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not resolve \"%s\" for the rr_router HTTP endpoint: %s",
						host, gai_strerror(rc))));
		return;
	}

	for (ai = res; ai != NULL && nlisten < RR_HTTP_MAX_LISTEN; ai = ai->ai_next)
	{
		pgsocket	sock = socket(ai->ai_family, SOCK_STREAM, 0);
		int			one = 1;

		if (sock == PGINVALID_SOCKET)
			continue;
		(void) setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
#ifdef IPV6_V6ONLY
		if (ai->ai_family == AF_INET6)
			(void) setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
#endif
		if (bind(sock, ai->ai_addr, ai->ai_addrlen) < 0 ||
			listen(sock, 64) < 0 || !pg_set_noblock(sock))
		{
			ereport(LOG,
					(errcode_for_socket_access(),
					 errmsg("could not listen on \"%s\" port %s for the rr_router HTTP endpoint: %m",
							host, port)));
			closesocket(sock);
			continue;
		}
		listen_socks[nlisten++] = sock;
	}
	freeaddrinfo(res);
}

/* Open the listening sockets if rr_router.http_port is set. */
void
rr_http_start(void)
{
	char	   *addresses;
	List	   *hosts;
	ListCell   *lc;
	char		port[16];

	for (int i = 0; i < RR_HTTP_MAX_CLIENTS; i++)
		clients[i].sock = PGINVALID_SOCKET;
	if (rr_http_port == 0)
		return;

	http_cxt = AllocSetContextCreate(TopMemoryContext, "rr_router HTTP",
									 ALLOCSET_DEFAULT_SIZES);

	snprintf(port, sizeof(port), "%d", rr_http_port);
	addresses = pstrdup(rr_http_listen_addresses);
	if (!SplitGUCList(addresses, ',', &hosts))
		ereport(LOG,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("invalid list syntax in parameter \"%s\"",
						"rr_router.http_listen_addresses")));
	else
	{
		foreach(lc, hosts)
			listen_on((const char *) lfirst(lc), port);
	}

	if (nlisten == 0)
		ereport(LOG,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("rr_router HTTP endpoint is not listening on any address")));
	else
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("rr_router HTTP endpoint listening on port %d",
						rr_http_port)));
}

/* Close a client's connection and free its slot. */
static void
client_close(HttpClient *c)
{
	closesocket(c->sock);
	c->sock = PGINVALID_SOCKET;
	wait_set_stale = true;
}

/* Append one "name value" line of the exposition with HELP and TYPE. */
static void
metric(StringInfo out, const char *name, const char *type, const char *help,
	   double value)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n",
					 name, help, name, type, name, value);
}

/* Set a one-line state answer: "role=... staleness=... lag_bytes=...". */
static void
answer_state(HttpAnswer *a, int status, const RRSample *s, bool known,
			 int64 staleness, bool replica_reads)
{
	int64		lag_bytes = rr_sample_lag_bytes(s);

	a->status = status;
	appendStringInfo(&a->body, "role=%s staleness=",
					 s->in_recovery ? "replica" : "primary");
	if (known)
		appendStringInfo(&a->body, "%.6fs", staleness / 1000000.0);
	else
		appendStringInfoString(&a->body, "unknown");
	if (lag_bytes >= 0)
		appendStringInfo(&a->body, " lag_bytes=" INT64_FORMAT, lag_bytes);
	else
		appendStringInfoString(&a->body, " lag_bytes=unknown");
	appendStringInfo(&a->body, " replica_reads=%s\n",
					 replica_reads ? "on" : "off");
}

/* Set the answer to the Prometheus exposition of the state and statistics. */
static void
answer_metrics(HttpAnswer *a, const RRSample *s, bool known, int64 staleness,
			   bool replica_reads)
{
	StringInfo	out = &a->body;
	int64		lag_bytes = rr_sample_lag_bytes(s);
	RRWaitCounters c;
	RRLagStats	stats[RR_LAG_STATS_WINDOWS];
	int			waiters = 0;
	static const char *outcomes[] = {"immediate", "woken", "timed_out", "cancelled"};
	int64		counts[4];

	rr_read_counters(&c);
	counts[0] = c.waits_immediate;
	counts[1] = c.waits_woken;
	counts[2] = c.waits_timed_out;
	counts[3] = c.waits_cancelled;

	LWLockAcquire(rr_shared->lock, LW_SHARED);
	for (int i = 0; i < rr_shared->nslots; i++)
		waiters += rr_shared->slots[i].in_queue ? 1 : 0;
	LWLockRelease(rr_shared->lock);

	rr_lag_stats_running(GetCurrentTimestamp(), stats);

	a->status = 200;
	a->content_type = "text/plain; version=0.0.4; charset=utf-8";
	metric(out, "rr_router_up", "gauge", "1 while the server runs.", 1);
	metric(out, "rr_router_is_replica", "gauge",
		   "1 on a replica, 0 on a primary.", s->in_recovery ? 1 : 0);
	metric(out, "rr_router_replica_reads", "gauge",
		   "The kill switch rr_router.replica_reads (1 = on).", replica_reads ? 1 : 0);
	if (known)
		metric(out, "rr_router_staleness_seconds", "gauge",
			   "Upper bound on how far visible data is behind the primary.",
			   staleness / 1000000.0);
	if (lag_bytes >= 0)
		metric(out, "rr_router_lag_bytes", "gauge",
			   "WAL bytes between the newest known primary position and replay.",
			   (double) lag_bytes);
	if (s->in_recovery)
	{
		metric(out, "rr_router_receive_lsn", "gauge",
			   "WAL position received and flushed here, in bytes.", (double) s->receive_lsn);
		metric(out, "rr_router_replay_lsn", "gauge",
			   "WAL position replayed here, in bytes.", (double) s->replay_lsn);
	}
	if (!s->in_recovery || s->has_primary_lsn)
		metric(out, "rr_router_primary_lsn", "gauge",
			   "Newest primary WAL position known here, in bytes.",
			   (double) s->primary_lsn);
	metric(out, "rr_router_waiters", "gauge",
		   "Sessions waiting in rr_wait_for_lsn now.", waiters);

	appendStringInfoString(out, "# HELP rr_router_waits_total Calls of rr_wait_for_lsn by outcome.\n"
						   "# TYPE rr_router_waits_total counter\n");
	for (int i = 0; i < 4; i++)
		appendStringInfo(out, "rr_router_waits_total{outcome=\"%s\"} " INT64_FORMAT "\n",
						 outcomes[i], counts[i]);
	metric(out, "rr_router_wait_seconds_total", "counter",
		   "Time spent in rr_wait_for_lsn.", c.wait_time_total / 1000000.0);
	metric(out, "rr_router_wait_seconds_max", "gauge",
		   "Longest single rr_wait_for_lsn call.", c.wait_time_max / 1000000.0);

	appendStringInfoString(out, "# HELP rr_router_staleness_window_seconds Staleness quantiles over the last period, as in rr_lag_stats.\n"
						   "# TYPE rr_router_staleness_window_seconds summary\n");
	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		static const char *q[] = {"0.5", "0.9", "0.99", "1"};
		int64		v[4];

		if (!stats[w].has_staleness)
			continue;
		v[0] = stats[w].staleness_p50;
		v[1] = stats[w].staleness_p90;
		v[2] = stats[w].staleness_p99;
		v[3] = stats[w].staleness_max;
		for (int k = 0; k < 4; k++)
			appendStringInfo(out, "rr_router_staleness_window_seconds{period=\"%dm\",quantile=\"%s\"} %.6f\n",
							 stats[w].minutes, q[k], v[k] / 1000000.0);
	}
	appendStringInfoString(out, "# HELP rr_router_lag_bytes_window_max Largest lag in bytes over the last period.\n"
						   "# TYPE rr_router_lag_bytes_window_max gauge\n");
	for (int w = 0; w < RR_LAG_STATS_WINDOWS; w++)
	{
		if (!stats[w].has_lag_bytes)
			continue;
		appendStringInfo(out, "rr_router_lag_bytes_window_max{period=\"%dm\"} " INT64_FORMAT "\n",
						 stats[w].minutes, stats[w].lag_bytes_max);
	}
}

/*
 * Does the postmaster accept connections now?  During a smart or fast
 * shutdown it refuses new ones while background workers, this one
 * included, run on until the sessions have gone; the status it writes into
 * postmaster.pid says which (read per request: a few microseconds).  An
 * unreadable file or a status still missing counts as not accepting.
 */
static bool
postmaster_accepting(void)
{
	char		path[MAXPGPATH];
	char		line[MAXPGPATH + 64];
	FILE	   *file;
	int			lineno = 0;
	bool		accepting = false;

	snprintf(path, sizeof(path), "%s/postmaster.pid", DataDir);
	file = AllocateFile(path, "r");
	if (file == NULL)
		return false;
	while (fgets(line, sizeof(line), file) != NULL)
	{
		if (++lineno == LOCK_FILE_LINE_PM_STATUS)
		{
			accepting = strncmp(line, PM_STATUS_READY, strlen(PM_STATUS_READY)) == 0 ||
				strncmp(line, PM_STATUS_STANDBY, strlen(PM_STATUS_STANDBY)) == 0;
			break;
		}
	}
	FreeFile(file);
	return accepting;
}

/*
 * Work out the answer to the request line 'line' (NUL-terminated, modified
 * in place).
 */
static void
answer_request(char *line, HttpAnswer *a, bool *head_only)
{
	RRHttpRequest req;
	int64		max_staleness;
	int64		max_lag_bytes;
	RRSample	s;
	int64		staleness = 0;
	TimestampTz as_of;
	bool		known;
	bool		replica_reads;
	bool		accepting;
	bool		takes_reads;
	int64		lag_bytes;
	bool		within;

	a->status = rr_http_parse_request(line, &req);
	*head_only = req.head_only;
	if (a->status != 0)
		return;
	max_staleness = req.has_max_staleness ? req.max_staleness :
		(int64) rr_max_staleness * 1000;
	max_lag_bytes = req.max_lag_bytes;

	rr_read_sample(&s, NULL);
	s.in_recovery = RecoveryInProgress();
	replica_reads = rr_replica_reads_on();

	/*
	 * A server in recovery serves reads only as a hot standby that has
	 * reached consistency: not with hot_standby = off, not before
	 * consistency, never in crash recovery.  No server serves anything
	 * while it shuts down.
	 */
	accepting = postmaster_accepting();
	takes_reads = accepting && (!s.in_recovery || HotStandbyActive());

	/* an unknown staleness or lag is never within a bound */
	known = rr_current_staleness(GetCurrentTimestamp(), &staleness, &as_of);
	lag_bytes = rr_sample_lag_bytes(&s);
	within = known && staleness <= max_staleness &&
		(max_lag_bytes < 0 || (lag_bytes >= 0 && lag_bytes <= max_lag_bytes));

	switch (req.path)
	{
		case RR_HTTP_METRICS:
			answer_metrics(a, &s, known, staleness, replica_reads);
			break;
		case RR_HTTP_HEALTH:
			answer_state(a, 200, &s, known, staleness, replica_reads);
			break;
		case RR_HTTP_PRIMARY:
			answer_state(a, s.in_recovery || !accepting ? 503 : 200, &s, known,
						 staleness, replica_reads);
			break;
		case RR_HTTP_REPLICA:
			answer_state(a,
						 s.in_recovery && takes_reads && replica_reads && within ?
						 200 : 503,
						 &s, known, staleness, replica_reads);
			break;
		case RR_HTTP_READ_ONLY:
			answer_state(a,
						 takes_reads && (!s.in_recovery || (replica_reads && within)) ?
						 200 : 503,
						 &s, known, staleness, replica_reads);
			break;
	}
}

/* Return the reason phrase of an HTTP status this endpoint uses. */
static const char *
status_text(int status)
{
	switch (status)
	{
		case 200:
			return "OK";
		case 400:
			return "Bad Request";
		case 404:
			return "Not Found";
		case 405:
			return "Method Not Allowed";
		case 408:
			return "Request Timeout";
		case 431:
			return "Request Header Fields Too Large";
		case 503:
			return "Service Unavailable";
	}
	return "Error";
}

/* Send the answer with one non-blocking send and close the connection. */
static void
client_reply(HttpClient *c, HttpAnswer *a, bool head_only)
{
	StringInfoData msg;

	if (a->status >= 400 && a->status != 503 && a->body.len == 0)
		appendStringInfo(&a->body, "%d %s\n", a->status, status_text(a->status));

	initStringInfo(&msg);
	appendStringInfo(&msg,
					 "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
					 "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
					 a->status, status_text(a->status),
					 a->content_type ? a->content_type : "text/plain; charset=utf-8",
					 a->body.len,
					 a->status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only)
		appendBinaryStringInfo(&msg, a->body.data, a->body.len);

	/* the socket is non-blocking; SIGPIPE is ignored in the worker */
	(void) send(c->sock, msg.data, msg.len, 0);
	client_close(c);
}

/* Reply with a bare error status and close the connection. */
static void
client_error(HttpClient *c, int status)
{
	HttpAnswer	a;

	a.status = status;
	a.content_type = NULL;
	initStringInfo(&a.body);
	client_reply(c, &a, false);
}

/*
 * Read what a client sent, with one recv(); answer once its request head is
 * complete.
 */
static void
client_read(HttpClient *c)
{
	int			from = c->len;
	ssize_t		n = recv(c->sock, c->buf + c->len, RR_HTTP_MAX_REQUEST - c->len,
						 MSG_DONTWAIT);
	HttpAnswer	a;
	bool		head_only;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0)
	{
		client_close(c);
		return;
	}
	c->len += n;
	c->buf[c->len] = '\0';

	switch (rr_http_head_state(c->buf, from, c->len, RR_HTTP_MAX_REQUEST))
	{
		case RR_HTTP_HEAD_PARTIAL:
			return;
		case RR_HTTP_HEAD_BAD:
			client_error(c, 400);
			return;
		case RR_HTTP_HEAD_TOO_LARGE:
			client_error(c, 431);
			return;
		case RR_HTTP_HEAD_COMPLETE:
			break;
	}

	/* the head is complete: answer its request line */
	a.content_type = NULL;
	initStringInfo(&a.body);
	answer_request(rr_http_request_line(c->buf), &a, &head_only);
	client_reply(c, &a, head_only);
}

/*
 * Accept up to RR_HTTP_ACCEPT_BATCH pending connections on 'lsock'; beyond
 * the client limit, each displaces the client that has waited longest.
 */
static void
accept_clients(pgsocket lsock)
{
	for (int n = 0; n < RR_HTTP_ACCEPT_BATCH; n++)
	{
		pgsocket	sock = accept(lsock, NULL, NULL);
		int			slot;

		if (sock == PGINVALID_SOCKET)
			return;				/* EAGAIN, or an error we cannot act on */

		for (slot = 0; slot < RR_HTTP_MAX_CLIENTS; slot++)
			if (clients[slot].sock == PGINVALID_SOCKET)
				break;
		if (slot == RR_HTTP_MAX_CLIENTS)
		{
			/*
			 * Full: make room by dropping the client that has waited longest
			 * without completing its request, so idle connections cannot
			 * lock out a health check.
			 */
			slot = 0;
			for (int i = 1; i < RR_HTTP_MAX_CLIENTS; i++)
				if (clients[i].deadline < clients[slot].deadline)
					slot = i;
			client_error(&clients[slot], 408);
		}
		if (!pg_set_noblock(sock))
		{
			closesocket(sock);
			continue;
		}
		clients[slot].sock = sock;
		clients[slot].len = 0;
		clients[slot].deadline =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RR_HTTP_TIMEOUT_MS);
		wait_set_stale = true;
	}
}

/* (Re)build the wait set from the latch and the sockets open now. */
static void
build_wait_set(void)
{
	if (wait_set != NULL)
		FreeWaitEventSet(wait_set);
	wait_set = rr_create_wait_event_set(RR_HTTP_MAX_EVENTS);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL,
					  NULL);
	for (int i = 0; i < nlisten; i++)
		AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, listen_socks[i], NULL,
						  (void *) &listen_socks[i]);
	for (int i = 0; i < RR_HTTP_MAX_CLIENTS; i++)
		if (clients[i].sock != PGINVALID_SOCKET)
			AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, clients[i].sock,
							  NULL, (void *) &clients[i]);
	wait_set_stale = false;
}

/*
 * Sleep up to 'timeout_ms' on the latch while serving HTTP clients; the work
 * done per call is bounded (see NOTES).
 */
void
rr_http_wait(long timeout_ms)
{
	WaitEvent	events[RR_HTTP_MAX_EVENTS];
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz end = TimestampTzPlusMilliseconds(now, timeout_ms);
	int			nevents;
	MemoryContext old_cxt;

	/* keep the running statistics of /metrics up with the history */
	rr_lag_stats_follow();

	/* everything allocated from here on is freed when this call returns */
	old_cxt = MemoryContextSwitchTo(http_cxt);

	/* close clients that ran out of time, and wake up for the next one */
	for (int i = 0; i < RR_HTTP_MAX_CLIENTS; i++)
	{
		if (clients[i].sock == PGINVALID_SOCKET)
			continue;
		if (clients[i].deadline <= now)
			client_error(&clients[i], 408);
		else
			end = Min(end, clients[i].deadline);
	}

	if (wait_set == NULL || wait_set_stale)
		build_wait_set();
	nevents = WaitEventSetWait(wait_set,
							   TimestampDifferenceMilliseconds(now, end),
							   events, lengthof(events),
							   rr_wait_event_worker_main());

	for (int i = 0; i < nevents; i++)
	{
		WaitEvent  *ev = &events[i];

		if (ev->events & WL_LATCH_SET)
			continue;			/* the caller resets the latch */
		if (ev->user_data >= (void *) &listen_socks[0] &&
			ev->user_data < (void *) &listen_socks[RR_HTTP_MAX_LISTEN])
			accept_clients(ev->fd);
		else if (ev->user_data != NULL &&
				 ((HttpClient *) ev->user_data)->sock != PGINVALID_SOCKET)
			client_read((HttpClient *) ev->user_data);
	}
	MemoryContextSwitchTo(old_cxt);
	MemoryContextReset(http_cxt);
}
