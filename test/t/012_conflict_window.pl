
# Copyright (c) 2026, rr_router contributors
#
# The window before a waiter drops its xmin (SPEC section 2).
# rr_wait_for_lsn can drop the session's xmin only once its statement has
# begun; until then the statement's snapshot is live.  If the replica
# replays cleanup of rows that snapshot could see in that window, the
# startup process waits for the waiter's whole transaction -- not just its
# xmin -- while the waiter waits for replay.  Left alone, both would wait
# until the wait's timeout or max_standby_streaming_delay, and every reader
# on the replica would go stale with them.  rr_router notices that replay is
# held up by a recovery conflict and makes waiters answer false at once, so
# the statement ends and replay goes on.
#
# The window is widened on purpose: the wait's argument sleeps for two
# seconds, holding the statement's snapshot, while the primary deletes and
# vacuums.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time sleep);

my ($primary, $replica) = conflict_pair('60s');

my $far = far_lsn($primary);

my $started = time;
my $waiter = bg_psql(
	$replica,
	"SELECT rr_wait_for_lsn((SELECT '$far'::pg_lsn FROM pg_sleep(2)), 60000);",
	app => 'waiter',
	verbose => 1);
ok( poll_until(
		$replica,
		"SELECT backend_xmin IS NOT NULL AND wait_event = 'PgSleep' "
		  . "FROM pg_stat_activity WHERE application_name = 'waiter'"),
	'the waiter holds its statement snapshot while its argument is computed');

# Make rows that snapshot can see dead and remove them on the primary.
$primary->safe_psql('postgres',
	"UPDATE c SET v = 'gone'; DELETE FROM c WHERE id % 2 = 0;");
$primary->safe_psql('postgres', 'VACUUM c');
my $token = write_token($primary, 't', 'after the cleanup');

# While the argument sleeps it is an ordinary snapshot holder and replay
# waits for it, as for any query.  Another session asking meanwhile gets a
# prompt answer: false while replay is held up (read from the primary), or
# true once it has moved on -- never a wait to its 30 s timeout.
my $t0 = time;
my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 30000)");
note "fresh token behind the cleanup: $r->{out} after $r->{ms} ms";
cmp_ok($r->{ms}, '<', 10000,
	'another waiter gets a prompt answer while replay is held up');

# Replay must get past the cleanup within seconds of the argument's sleep
# ending, not after the waiter's 60 s timeout or max_standby_streaming_delay.
ok(poll_until($replica, "SELECT pg_last_wal_replay_lsn() >= '$token'", 't', 30),
	'replay reaches the write behind the cleanup');
my $replay_secs = time - $t0;
note sprintf('replay passed the cleanup %.1f s after it was written', $replay_secs);
cmp_ok($replay_secs, '<', 10, '... within seconds: the waiter did not stall replay');
is($replica->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 5000)"),
	't', '... and a wait for it now answers true');

my $res = bg_finish($waiter, 70);
my $elapsed = time - $started;
note sprintf('the first waiter answered "%s" after %.1f s', $res->{out} // '',
	$elapsed);
is($res->{out}, 'f',
	'the waiter in the conflict answers false instead of waiting on');
cmp_ok($elapsed, '<', 15, '... long before its 60 s timeout');

is($replica->safe_psql('postgres', 'SELECT count(*) FROM rr_waiters'),
	'0', 'nobody is left in rr_waiters');

# With the conflict over, waiting works as before.
pause_replay($replica);
$token = write_token($primary, 't', 'after the conflict');
my $w2 = bg_psql($replica, "SELECT rr_wait_for_lsn('$token', 20000);",
	app => 'waiter2');
ok(wait_waiters($replica, 1), 'a new waiter queues while replay is paused');
sleep(0.5);
ok(bg_alive($w2), '... and keeps waiting: a pause is not a conflict');
resume_replay($replica);
$res = bg_finish($w2, 25);
is($res->{out}, 't', '... and is woken when replay resumes');

done_testing();
