
# Copyright (c) 2025, rr_router contributors
#
# A waiter leaves rr_waiters on every way out: query cancel,
# statement_timeout, pg_terminate_backend and postmaster death; the session
# and the replica keep working afterwards.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica');

my $far = far_lsn($primary);
my $pid_of = sub {
	my ($app) = @_;
	return $replica->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
};

# --- query cancel --------------------------------------------------------

my $c0 = rr_counters($replica);
my $w = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 120000);\nSELECT 'after';",
	app => 'cancelme',
	verbose => 1);
ok(wait_waiters($replica, 1), 'the waiter is queued');
my $pid = $pid_of->('cancelme');
$replica->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $res = bg_finish($w, 30);
note sprintf('cancelled waiter exited %.3f s after pg_cancel_backend',
	$res->{secs});
like($res->{err}, qr/57014: canceling statement due to user request/,
	'the cancelled waiter got a query-cancel error');
is($res->{out}, 'after', 'the session went on with its next statement');
cmp_ok($res->{secs}, '<', 5, 'the cancel took effect at once');
ok(wait_waiters($replica, 0, 'true', 5), 'rr_waiters is empty after cancel');
my $c1 = rr_counters($replica);
is($c1->{waits_cancelled} - $c0->{waits_cancelled},
	1, 'waits_cancelled counted it');

# --- statement_timeout ---------------------------------------------------

$c0 = rr_counters($replica);
my $r = timed_sql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 60000)",
	setup => "SET statement_timeout = '300ms';");
note "statement_timeout 300ms: error after $r->{ms} ms";
like($r->{err}, qr/57014: canceling statement due to statement timeout/,
	'statement_timeout interrupts the wait');
cmp_ok($r->{ms}, '>=', 250, '... at the statement timeout');
cmp_ok($r->{ms}, '<', 5000, '... not much later');
ok(wait_waiters($replica, 0, 'true', 5),
	'rr_waiters is empty after statement_timeout');
$c1 = rr_counters($replica);
is($c1->{waits_cancelled} - $c0->{waits_cancelled},
	1, 'waits_cancelled counted the statement timeout');

# --- the same session waits again after an error ------------------------

my $s = session($replica, app => 'again');
{
	my $canceller = bg_psql($replica,
		"SELECT pg_sleep(0.5);\n"
		  . "SELECT pg_cancel_backend(pid) FROM rr_waiters;");
	my ($out, $err) = $s->q_err("SELECT rr_wait_for_lsn('$far', 60000)");
	bg_finish($canceller, 10);
	like($err, qr/57014/, 'a session waiting again can be cancelled');
}
my $token = write_token($primary, 't', 'again');
is($s->q("SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'the same session then waits successfully');
ok(wait_waiters($replica, 0, 'true', 5), 'and leaves nothing queued');
$s->quit;

# --- pg_terminate_backend ------------------------------------------------

$w = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 120000);",
	app => 'terminateme',
	verbose => 1);
ok(wait_waiters($replica, 1), 'a waiter to terminate is queued');
$pid = $pid_of->('terminateme');
$replica->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$res = bg_finish($w, 30);
note sprintf('terminated waiter exited %.3f s after pg_terminate_backend',
	$res->{secs});
like($res->{err}, qr/57P01: terminating connection due to administrator command/,
	'the terminated waiter got FATAL 57P01');
cmp_ok($res->{secs}, '<', 5, 'termination took effect at once');
ok(wait_waiters($replica, 0, 'true', 5),
	'rr_waiters is empty after pg_terminate_backend');

$token = write_token($primary, 't', 'after terminate');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'the replica keeps serving waits');
is( $replica->safe_psql('postgres',
		"SELECT count(*) FROM t WHERE v = 'after terminate'"),
	'1',
	'... and reads');

# --- postmaster death ----------------------------------------------------

$w = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 120000);",
	app => 'orphan',
	verbose => 1);
ok(wait_waiters($replica, 1), 'a waiter is queued before the postmaster dies');
$pid = $pid_of->('orphan');
my $postmaster = (split /\n/,
	  slurp_file($replica->data_dir . '/postmaster.pid'))[0];
$replica->kill9;
$res = bg_finish($w, 30);
note sprintf('waiter exited %.3f s after the postmaster was killed',
	$res->{secs});
ok(defined $res->{rc}, 'the waiter did not outlive the postmaster');
cmp_ok($res->{secs}, '<', 10, 'the waiting backend noticed postmaster death');
ok(wait_pid_gone($pid, 10), 'the waiting backend process is gone');
wait_pid_gone($postmaster, 30) or die 'the killed postmaster is still there';

$replica->start;
ok(wait_waiters($replica, 0, 'true', 30), 'rr_waiters is empty after restart');
$token = write_token($primary, 't', 'after restart');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'the restarted replica serves waits');

done_testing();
