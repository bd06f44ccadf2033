
# Copyright (c) 2025, rr_router contributors
#
# The background worker's life: one per server, listed in rr_status; it
# keeps sampling across a configuration reload, comes back when it is
# terminated or crashes, and a fast shutdown with waiters queued is not held
# up by them.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica =
  rr_replica($primary, 'replica', conf => 'restart_after_crash = on');

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT worker_pid FROM rr_status');
}

# Recognise the worker by its process title.
sub is_worker_process
{
	my ($pid) = @_;
	return 0 unless defined $pid && $pid =~ /^\d+$/ && kill(0, $pid);
	my $cmd = eval { slurp_file("/proc/$pid/cmdline") } // '';
	return $cmd =~ /rr_router worker/ ? 1 : 0;
}

for my $node ($primary, $replica)
{
	my $name = $node->name;
	my $pid = worker_pid($node);
	like($pid, qr/^\d+$/, "$name: rr_status.worker_pid is set");
	ok(is_worker_process($pid),
		"$name: ... to a live process titled rr_router worker");
}
# pg_stat_activity lists the worker, with no database, and what it waits
# for while it sleeps: RRWorkerMain since PostgreSQL 17, which lets
# extensions name their wait events, the generic Extension before.
for my $node ($primary, $replica)
{
	my $name = $node->name;
	my $event =
	  $node->pg_version->major >= 17 ? 'RRWorkerMain' : 'Extension';
	ok( poll_until(
			$node,
			"SELECT backend_type || '|' || coalesce(datname, '-') || '|'
			        || wait_event_type || '|' || wait_event
			   FROM pg_stat_activity
			  WHERE pid = (SELECT worker_pid FROM rr_status)",
			"rr_router worker|-|Extension|$event"),
		"$name: pg_stat_activity lists the worker, in wait event $event");
}

# As a backend the worker takes part in ProcSignal barriers, which DROP
# DATABASE waits for: it must absorb them, here and in replay.
$primary->safe_psql('postgres', 'CREATE DATABASE scratch');
my ($ret, $out, $err) = $primary->psql('postgres', 'DROP DATABASE scratch',
	timeout => 60);
is($ret, 0, 'DROP DATABASE completes with the worker running');
$primary->wait_for_catchup($replica);
is($replica->safe_psql('postgres',
		"SELECT count(*) FROM pg_database WHERE datname = 'scratch'"),
	'0', '... and replays on the replica');

is($primary->safe_psql('postgres', 'SELECT role FROM rr_status'),
	'primary', 'rr_status.role on the primary');
is($replica->safe_psql('postgres', 'SELECT role FROM rr_status'),
	'replica', 'rr_status.role on the replica');

# --- reload: same worker, still sampling ---------------------------------

my $pid = worker_pid($replica);
$replica->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.sample_interval = '50ms';\n"
	  . 'SELECT pg_reload_conf()');
my $sampled = $replica->safe_psql('postgres',
	'SELECT last_sample_at FROM rr_status');
ok( poll_until(
		$replica,
		"SELECT last_sample_at > '$sampled'::timestamptz FROM rr_status",
		't', 10),
	'after a reload the worker keeps sampling');
is(worker_pid($replica), $pid, '... in the same process');
my $token = write_token($primary, 't', 'sampled');
ok( poll_until(
		$replica,
		"SELECT replay_lsn >= '$token' FROM rr_status", 't', 10),
	'rr_status.replay_lsn follows replay');

# --- terminated: the postmaster starts a new one -------------------------

# The worker has no PGPROC in the proc array, so pg_terminate_backend()
# cannot reach it; an administrator's kill(1) can.  Without a worker the
# kill switch would no longer be published on reload, so it must come back.
kill 'TERM', $pid;
ok(wait_pid_gone($pid, 10), 'a worker sent SIGTERM exits');
my ($back, $secs) = poll_until($replica,
	"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM rr_status",
	't', 30);
note sprintf('new worker_pid %.1f s after SIGTERM', $secs);
ok($back, 'a terminated worker is started again');
ok(is_worker_process(worker_pid($replica)),
	'... and rr_status names the live new one');
$token = write_token($primary, 't', 'after terminate');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'waits work with the new worker');

# --- crash: the server restarts, the worker comes back -------------------

$pid = worker_pid($replica);
my $far = far_lsn($primary);
my $waiter = bg_psql($replica, "SELECT rr_wait_for_lsn('$far', 120000);",
	verbose => 1);
ok(wait_waiters($replica, 1), 'a waiter is queued before the crash');
kill 'KILL', $pid;
my $res = bg_finish($waiter, 30);
ok(defined $res->{rc}, 'the crash ends the waiting session');
ok( poll_until(
		$replica,
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM rr_status",
		't', 60),
	'after a crash restart a new worker runs');
ok(is_worker_process(worker_pid($replica)), '... a live one');
is($replica->safe_psql('postgres', 'SELECT count(*) FROM rr_waiters'),
	'0', 'rr_waiters starts empty after the crash');
$token = write_token($primary, 't', 'after crash');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'waits work after the crash restart');

# --- fast shutdown with waiters queued -----------------------------------

my @waiters = map {
	bg_psql($replica, "SELECT rr_wait_for_lsn('$far', 120000);",
		verbose => 1)
} 1 .. 3;
ok(wait_waiters($replica, 3), 'three waiters are queued');
my $t0 = time();
$replica->stop('fast');
my $stop_secs = time() - $t0;
note sprintf('fast shutdown with 3 waiters took %.2f s', $stop_secs);
cmp_ok($stop_secs, '<', 15, 'waiters do not hold up a fast shutdown');
my $ended = grep { defined bg_finish($_, 10)->{rc} } @waiters;
is($ended, 3, 'every waiting session ended');

$replica->start;
$token = write_token($primary, 't', 'after stop');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'after a restart waits work again');
is($replica->safe_psql('postgres', 'SELECT count(*) FROM rr_waiters'),
	'0', 'with nothing left in rr_waiters');

done_testing();
