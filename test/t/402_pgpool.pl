
# Copyright (c) 2026, rr_router contributors
#
# pgpool-II (streaming-replication mode, load balancing on, every balanced
# read going to the replica) in front of a primary and a replica.
#
# - Out of the box pgpool sends a SELECT that calls a VOLATILE function to
#   the primary, and every rr_router function is VOLATILE: in a session
#   balanced to the replica, "SELECT rr_wait_for_lsn(token)" is answered
#   by the primary (true at once, while the replica has not replayed the
#   write: the next read misses it), and rr_is_fresh() by the primary too.
# - With the README's configuration (write_function_list names the
#   functions that must go to the primary, so that everything else,
#   rr_wait_for_lsn and rr_is_fresh included, is balanced), the wait sleeps
#   on the replica: it shows in the replica's rr_waiters, with the backend
#   pid the same session then reports, pg_is_in_recovery() is true and the
#   port is the replica's in that session, and the read after it sees the
#   write.  rr_last_commit_lsn() (in write_function_list) still goes to the
#   primary connection of the session, which committed.
# - Ten commits in one simple Query and an extended-protocol pipeline of ten
#   commits before one Sync leave the connection usable and deliver the
#   newest token, by rr_last_commit_lsn() and, with
#   rr_router.report_commit_lsn on, as the ParameterStatus.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRPoolers;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

plan skip_all => 'pgpool is not installed (apt-get install pgpool2)'
  unless find_pooler('pgpool');
my ($python, $pyerr) = python3_with('psycopg');
plan skip_all => "python3 with psycopg 3 is needed: $pyerr" unless $python;

my $primary = rr_primary('primary');
$primary->safe_psql(
	'postgres', q{
CREATE TABLE t(id serial PRIMARY KEY, v text);
CREATE TABLE rr_pool_t(run text, client int, seq int,
                       PRIMARY KEY (run, client, seq));
});
my $replica = rr_replica($primary, 'replica');
my $rport = $replica->port;

# The README's pgpool.conf lines: the functions that must run on the
# primary; every other function call is balanced.
my $readme_conf = q{
write_function_list = 'nextval,setval,lastval,currval,rr_last_commit_lsn,rr_last_commit_token,pg_current_wal_lsn,pg_current_wal_insert_lsn,pg_current_wal_flush_lsn'
};

sub waits { return rr_counters($_[0])->{waits}; }

# --- pgpool out of the box: the wait is answered by the primary ----------

my $pp = start_pgpool('default', $primary, $replica);
my $dsn = pooler_dsn($pp, 'postgres');
note "pgpool (default function lists) on port $pp->{port}";

my ($out, $err) = psql_dsn($dsn, q{SELECT current_setting('port')});
is($out, $rport, 'default pgpool: plain reads of a session go to the replica')
  or diag $err;

pause_replay($replica);
($out, $err) = psql_dsn($dsn,
	"INSERT INTO t(v) VALUES ('default');\nSELECT rr_last_commit_lsn();");
my $token = $out;
like($token, qr{^[0-9A-F]+/[0-9A-F]+$},
	'default pgpool: a write and its token through pgpool')
  or diag $err;
my ($pw, $rw) = (waits($primary), waits($replica));
($out, $err) = psql_dsn(
	$dsn, qq{SELECT rr_wait_for_lsn('$token', 3000);
SELECT count(*) FROM t WHERE v = 'default';});
is($out, "t\n0",
	'default pgpool: rr_wait_for_lsn says true at once, yet the read misses the write'
) or diag $err;
is(waits($primary) - $pw, 1, '... because the primary answered the wait');
is(waits($replica) - $rw, 0, '... and the replica never saw it');
usleep(1_200_000);
is($replica->safe_psql('postgres', q{SELECT rr_is_fresh('500ms')}),
	'f', 'with replay paused the replica is not fresh');
($out, $err) = psql_dsn($dsn, q{SELECT rr_is_fresh('500ms')});
is($out, 't', '... but through default pgpool rr_is_fresh() says it is')
  or diag $err;
resume_replay($replica);
stop_pooler($pp);

# --- the README's configuration: the wait runs on the replica ------------

$pp = start_pgpool('readme', $primary, $replica, $readme_conf);
$dsn = pooler_dsn($pp, 'postgres');
note "pgpool (README configuration) on port $pp->{port}";

pause_replay($replica);
my $lsn_before = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
($out, $err) = psql_dsn($dsn,
	"INSERT INTO t(v) VALUES ('readme');\nSELECT rr_last_commit_lsn();");
$token = $out;
like($token, qr{^[0-9A-F]+/[0-9A-F]+$},
	'README pgpool: rr_last_commit_lsn() goes to the primary, which committed')
  or diag $err;
ok(lsn_cmp($token, $lsn_before) > 0, '... and is past the WAL before the write');
($pw, $rw) = (waits($primary), waits($replica));
my $bg = bg_psql_dsn(
	$dsn, qq{SELECT rr_wait_for_lsn('$token', 60000);
SELECT pg_is_in_recovery(), current_setting('port'), pg_backend_pid();
SELECT count(*) FROM t WHERE v = 'readme';});
ok(wait_waiters($replica, 1, "target_lsn = '$token'"),
	'README pgpool: the wait sleeps on the replica (rr_waiters there)');
my $waiter = $replica->safe_psql('postgres',
	"SELECT pid FROM rr_waiters WHERE target_lsn = '$token'");
my $t_resume = time();
resume_replay($replica);
my $res = bg_finish($bg, 60);
my @lines = split /\n/, $res->{out};
is($lines[0], 't', '... and answers true once replay resumes') or diag $res->{err};
is($lines[1], "t|$rport|$waiter",
	'... in a session on the replica: pg_is_in_recovery(), its port, the waiting pid');
is($lines[2], '1', '... and the read after it sees the write');
is(waits($replica) - $rw, 1, 'the replica counted the wait');
is(waits($primary) - $pw, 0, 'the primary did not');

pause_replay($replica);
usleep(1_200_000);
($out, $err) = psql_dsn($dsn,
	q{SELECT rr_is_fresh('500ms'), rr_staleness() > '1 s', pg_is_in_recovery()});
is($out, 'f|t|t',
	'README pgpool: rr_is_fresh() and rr_staleness() are answered by the replica')
  or diag $err;
resume_replay($replica);

# --- many commits in one round trip -----------------------------------------

for my $report (0, 1)
{
	my $what = $report ? 'report_commit_lsn on' : 'report_commit_lsn off';
	my @cmd = (
		$python, "$FindBin::RealBin/../clients/poolers/pgpool_rounds.py",
		'--dsn' => $dsn,
		'--tag' => "pgpool$report",
		$report ? ('--report') : ());
	my ($o, $e) = ('', '');
	IPC::Run::run(\@cmd, '>' => \$o, '2>' => \$e, IPC::Run::timeout(120));
	my ($json) = $o =~ /^RESULT (.*)$/m;
	my $r = $json ? decode_json($json) : {};
	note "pgpool_rounds ($what): " . ($json // "no result: $e");
	for my $kind (qw(multi pipeline))
	{
		my $k = $r->{$kind} // { error => "no result: $e" };
		my $name = $kind eq 'multi'
		  ? 'ten commits in one simple Query'
		  : 'a pipeline of ten commits before one Sync';
		ok(!exists $k->{error}, "$what: $name through pgpool")
		  or diag $k->{error};
		is($k->{select_1}, 1, "$what: ... leaves the connection usable");
		ok($k->{token_past_last_insert},
			"$what: ... returns the newest token ($k->{token})");
		is($k->{last_commit_lsn_after}, $k->{token},
			"$what: ... which rr_last_commit_lsn() repeats afterwards");
		is($primary->safe_psql('postgres',
			"SELECT count(*) FROM rr_pool_t WHERE run = 'pgpool$report-$kind'"),
			10, "$what: ... and all ten commits are there");
		next unless $report;
		is($k->{parameter_status}, $k->{token},
			"$what: ... and the ParameterStatus carries it");
	}
}

stop_pooler($pp);
done_testing();
