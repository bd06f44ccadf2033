
# Copyright (c) 2025, rr_router contributors
#
# Replay held up by a buffer-pin recovery conflict: a cursor on the replica
# keeps a page pinned that the primary's VACUUM prunes, so the startup
# process waits for the pin (up to max_standby_streaming_delay) before it
# can replay the cleanup.  Waiting for a write behind it is pointless:
# rr_wait_for_lsn answers false at once instead of sleeping to its timeout.
# The startup process's wait event for this changed name in PostgreSQL 19
# (BufferPin, then BufferCleanup), which src/compat.h follows.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;

my ($primary, $replica) = conflict_pair('120s');

# Dead rows on every page of c, removed before any replica snapshot below
# is taken: pruning them conflicts with no snapshot, only with the pin.
$primary->safe_psql('postgres', 'DELETE FROM c WHERE id % 2 = 0');
$primary->wait_for_catchup($replica);

my $pinner = bg_psql(
	$replica,
	"BEGIN;\n"
	  . "DECLARE k CURSOR FOR SELECT * FROM c;\n"
	  . "FETCH 1 FROM k;\n"
	  . 'SELECT pg_sleep(120);',
	app => 'pinner',
	verbose => 1);
ok( poll_until(
		$replica,
		"SELECT wait_event = 'PgSleep' FROM pg_stat_activity "
		  . "WHERE application_name = 'pinner'"),
	'a cursor on the replica holds a pin on the first page of c');

$primary->safe_psql('postgres', 'VACUUM c');
my $token = write_token($primary, 't', 'behind the cleanup');

# (major: a release candidate such as 19rc1 sorts below 19 itself)
my $pin_event =
  $replica->pg_version->major >= 19 ? 'BufferCleanup' : 'BufferPin';
ok( poll_until(
		$replica,
		"SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup'",
		$pin_event, 30),
	"replay waits for the pin (startup process in wait event $pin_event)");

my $r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 20000)");
note "wait for a write behind the pinned cleanup: $r->{out} in $r->{ms} ms";
is($r->{out}, 'f', 'a wait for a write behind it answers false');
cmp_ok($r->{ms}, '<', 2000, '... at once, not after its 20 s timeout');
is( $replica->safe_psql(
		'postgres', 'SELECT pg_last_wal_replay_lsn() < ' . "'$token'"),
	't',
	'... while replay is still held up');

$replica->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	  . "WHERE application_name = 'pinner'");
bg_finish($pinner, 20);
$r = timed_sql($replica, "SELECT rr_wait_for_lsn('$token', 20000)");
is($r->{out}, 't', 'once the pin is gone, the same wait answers true');

done_testing();
