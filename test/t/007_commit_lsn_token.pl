
# Copyright (c) 2025, rr_router contributors
#
# rr_router.report_commit_lsn: a real client library (psycopg 3, i.e. libpq's
# PQparameterStatus) reads the ParameterStatus rr_router.last_commit_lsn
# after a commit, and that token, used with rr_wait_for_lsn on a lagging
# replica, makes the write visible there.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;

# Debian's python3-psycopg is installed for /usr/bin/python3.
my ($python) = grep { -x $_ } ('/usr/bin/python3', 'python3');
my ($pyout, $pyerr) = ('', '');
if (!IPC::Run::run([ $python, '-c', 'import psycopg' ],
		'>' => \$pyout, '2>' => \$pyerr))
{
	fail('this test needs python3 with psycopg 3 '
		  . "(apt-get install python3-psycopg): $pyerr");
	done_testing();
	exit;
}

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id int PRIMARY KEY, v text)');
my $replica = rr_replica($primary, 'replica',
	conf => "recovery_min_apply_delay = '500ms'");

# The client: prints one "name=value" line per observation.  A parameter
# the server never reported prints as "None".
my $client = <<'PY';
import sys
import psycopg

def status(conn, name="rr_router.last_commit_lsn"):
    return str(conn.info.parameter_status(name))

def scalar(conn, sql):
    return str(conn.execute(sql).fetchone()[0])

def show(name, value):
    print(f"{name}={value}", flush=True)

conn = psycopg.connect(sys.argv[1], autocommit=True)
other = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("SET rr_router.report_commit_lsn = on")
show("before_write", status(conn))
show("lsn_before", scalar(conn, "SELECT pg_current_wal_lsn()"))
conn.execute("INSERT INTO t VALUES (1, 'one')")
show("token1", status(conn))

# Read-only work does not change the token.  First statements that read no
# table of ours, then, after a checkpoint, transactions that read the new
# rows: with wal_log_hints on (as the test cluster has it, and as data
# checksums imply) setting their hint bits writes a full-page image to WAL,
# but these transactions have no commit record.
conn.execute("SELECT 1")
show("after_select", status(conn))
show("last1", scalar(conn, "SELECT rr_last_commit_lsn()"))
show("flush1", scalar(conn, "SELECT pg_current_wal_flush_lsn()"))
show("after_functions", status(conn))
other.execute("CHECKPOINT")
conn.execute("SELECT count(*) FROM t")
with conn.transaction():
    conn.execute("SELECT * FROM t")
show("after_read", status(conn))
show("last_after_read", scalar(conn, "SELECT rr_last_commit_lsn()"))
other.close()

# A rolled-back write has no commit record.
conn.execute("BEGIN")
conn.execute("INSERT INTO t VALUES (99, 'rolled back')")
conn.execute("ROLLBACK")
show("after_rollback", status(conn))

# In a transaction block the token moves at COMMIT, not before.
conn.execute("BEGIN")
conn.execute("INSERT INTO t VALUES (2, 'two')")
conn.execute("INSERT INTO t VALUES (3, 'three')")
show("in_block", status(conn))
conn.execute("COMMIT")
show("token2", status(conn))
show("last2", scalar(conn, "SELECT rr_last_commit_lsn()"))
show("timeline_token2", status(conn, "rr_router.last_commit_token"))
show("last_token2", scalar(conn, "SELECT rr_last_commit_token()"))

# With reporting off nothing more is reported, but the function still
# follows the commits.
conn.execute("SET rr_router.report_commit_lsn = off")
conn.execute("INSERT INTO t VALUES (4, 'four')")
show("off_status", status(conn))
show("off_last", scalar(conn, "SELECT rr_last_commit_lsn()"))
conn.close()

# A session that never turned reporting on.
conn = psycopg.connect(sys.argv[1], autocommit=True)
show("default_before", status(conn))
conn.execute("INSERT INTO t VALUES (5, 'five')")
show("default_after", status(conn))
conn.close()
PY

my $connstr = $primary->connstr('postgres');
my ($out, $err) = ('', '');
my $ran = IPC::Run::run([ $python, '-c', $client, $connstr ],
	'>' => \$out, '2>' => \$err);
note "client output:\n$out";
ok($ran, 'the psycopg client ran') or diag $err;
my %v = map { split /=/, $_, 2 } grep { /=/ } split /\n/, $out;

my $lsn_re = qr{^[0-9A-F]+/[0-9A-F]+$};
like($v{token1} // '', $lsn_re,
	'after an INSERT the client has rr_router.last_commit_lsn');
is($v{token1}, $v{last1}, '... equal to rr_last_commit_lsn() in that session');
ok(lsn_cmp($v{token1}, $v{lsn_before}) > 0,
	'... past the WAL position before the write');
ok(lsn_cmp($v{token1}, $v{flush1}) <= 0, '... and flushed on the primary');
is($v{after_select}, $v{token1}, 'SELECT 1 does not change it');
is($v{after_functions}, $v{token1},
	'... nor do calls of rr_last_commit_lsn() and pg_current_wal_flush_lsn()');
is($v{after_read}, $v{token1},
	'... nor read-only transactions that set hint bits after a checkpoint');
is($v{last_after_read}, $v{token1},
	'... and rr_last_commit_lsn() stays at the last commit record too');
is($v{after_rollback}, $v{after_read},
	'a rolled-back write does not change it');
is($v{in_block}, $v{after_rollback},
	'inside a transaction block it waits for COMMIT');
like($v{token2} // '', $lsn_re, 'the COMMIT reports a token');
ok(lsn_cmp($v{token2}, $v{token1}) > 0, '... later than the first one');
is($v{token2}, $v{last2}, '... equal to rr_last_commit_lsn()');
is($v{timeline_token2}, "1:$v{token2}",
	'rr_router.last_commit_token reports the same commit with its timeline');
is($v{timeline_token2}, $v{last_token2}, '... equal to rr_last_commit_token()');
is($v{off_status}, $v{token2},
	'with report_commit_lsn off, a commit reports nothing new');
ok(lsn_cmp($v{off_last}, $v{token2}) > 0,
	'... while rr_last_commit_lsn() still follows the commits');
is($v{default_after}, $v{default_before},
	'a session with the default (off) gets no token reported');
unlike($v{default_after} // '', $lsn_re, '... not even an LSN');

# The reported token makes the first write visible on a lagging replica.
my $token = $v{token1};
my $s = session($replica);
my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 10000)");
note "replica wait for the reported token: $r->{out} in $r->{ms} ms";
is($r->{out}, 't', 'the reported token is usable with rr_wait_for_lsn');
is($s->q('SELECT v FROM t WHERE id = 1'),
	'one', '... and the write is visible after the wait');
$token = $v{token2};
is($s->q("SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'so is the token of the transaction block');
is($s->q('SELECT count(*) FROM t WHERE id IN (2, 3)'),
	'2', '... and both of its rows are visible');
$s->quit;

done_testing();
