
# Copyright (c) 2025, rr_router contributors
#
# A session waiting in rr_wait_for_lsn must not stall replay (SPEC section
# 2): while it waits, the primary updates and vacuums rows its snapshot
# could see.  A session that held its snapshot would make the startup
# process wait up to max_standby_streaming_delay (30 s) before replaying the
# cleanup; a control with a plain snapshot holder shows that this setup
# really stalls replay, then the waiter is shown not to.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time sleep);

my ($primary, $replica) = conflict_pair('30s');

my $far = far_lsn($primary);

# Make rows the replica's older snapshots can see dead, remove them, and
# return a token for a write after the cleanup.
sub churn
{
	my ($round) = @_;
	$primary->safe_psql('postgres',
		"UPDATE c SET v = 'round $round'; DELETE FROM c WHERE id % 10 = $round;"
	);
	$primary->safe_psql('postgres', 'VACUUM c');
	return write_token($primary, 't', "after round $round");
}

sub conflicts
{
	return $replica->safe_psql('postgres',
		'SELECT confl_snapshot FROM pg_stat_database_conflicts '
		  . 'WHERE datname = current_database()');
}

# --- control: a plain snapshot holder stalls replay ----------------------

my $holder = bg_psql(
	$replica,
	"BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
	  . "SELECT count(*) FROM c;\n"
	  . 'SELECT pg_sleep(120);',
	app => 'holder',
	verbose => 1);
ok( poll_until(
		$replica,
		"SELECT backend_xmin IS NOT NULL AND wait_event = 'PgSleep' "
		  . "FROM pg_stat_activity WHERE application_name = 'holder'"),
	'control: a session on the replica holds a snapshot');
my $token = churn(1);
my ($replayed) = poll_until($replica,
	"SELECT pg_last_wal_replay_lsn() >= '$token'", 't', 3, 1);
ok(!$replayed,
	'control: replay stalls behind the snapshot holder (the setup is sound)');
$replica->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	  . "WHERE application_name = 'holder'");
bg_finish($holder, 20);
ok( poll_until(
		$replica, "SELECT pg_last_wal_replay_lsn() >= '$token'",
		't', 20),
	'control: replay resumes once the holder is gone');
my $conflicts0 = conflicts();

# --- a waiter must not stall replay --------------------------------------

my $waiter = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn('$far', 120000);",
	app => 'waiter',
	verbose => 1);
ok(wait_waiters($replica, 1), 'a waiter for a far target is queued');
is( $replica->safe_psql(
		'postgres',
		'SELECT backend_xmin IS NULL FROM pg_stat_activity '
		  . "WHERE application_name = 'waiter'"),
	't',
	'the waiting session holds no snapshot xmin');

$token = churn(2);
my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 20000)");
note "wait for a write after the cleanup: $r->{out} in $r->{ms} ms";
is($r->{out}, 't', 'a fresh token behind the cleanup is reached');
cmp_ok($r->{ms}, '<', 5000, '... within seconds: replay did not stall');

ok(bg_alive($waiter), 'the first waiter is still waiting');
is($replica->safe_psql('postgres',
		"SELECT count(*) FROM rr_waiters WHERE target_lsn = '$far'"),
	'1', '... and still listed in rr_waiters');
is(conflicts(), $conflicts0, 'no session was cancelled by a recovery conflict');

$replica->safe_psql('postgres',
	'SELECT pg_cancel_backend(pid) FROM rr_waiters');
my $res = bg_finish($waiter, 20);
like($res->{err}, qr/57014: canceling statement due to user request/,
	'the waiter ends only when cancelled, not by a conflict');

done_testing();
