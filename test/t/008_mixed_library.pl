
# Copyright (c) 2025, rr_router contributors
#
# Mixed deployments keep replicating: nothing rr_router writes into WAL may
# need the library to replay.  A replica without the library follows a
# primary with it, and the reverse.  Where the library is not preloaded,
# CREATE EXTENSION works and every function raises the SPEC section 1 error.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(sleep);

my $not_loaded = 'rr_router must be loaded via "shared_preload_libraries"';

# Calls that must each raise the not-loaded error; the views go through
# functions too.
my @calls = (
	"SELECT rr_wait_for_lsn('0/1', 0)",
	"SELECT rr_wait_for_lsn('0/1')",
	'SELECT rr_last_commit_lsn()',
	'SELECT * FROM rr_status',
	'SELECT * FROM rr_waiters');

# Functions that later versions add; checked when this build has them.
my %optional = (
	rr_staleness => 'SELECT rr_staleness()',
	rr_is_fresh => "SELECT rr_is_fresh('1s')",
	rr_reset_stats => 'SELECT rr_reset_stats()',
	rr_last_commit_token => 'SELECT rr_last_commit_token()',
	rr_wait_for_token => "SELECT rr_wait_for_token('1:0/1', 0)");

sub check_not_loaded
{
	my ($node, $where) = @_;
	my @todo = @calls;
	for my $f (sort keys %optional)
	{
		push @todo, $optional{$f}
		  if $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_proc WHERE proname = '$f'") > 0;
	}
	for my $sql (@todo)
	{
		my $r = timed_sql($node, $sql);
		is(sqlstate_of($r->{err}), '55000', "$where: $sql raises 55000");
		like($r->{err}, qr/\Q$not_loaded\E/, "$where: ... with the message");
	}
	return;
}

# --- primary with the library, replica without ---------------------------

my $primary = rr_primary('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $plain = rr_replica($primary, 'plain_replica', preload => 0);
my $full = rr_replica($primary, 'full_replica');

# Let the worker do whatever it does on a primary (sampling, heartbeats),
# with commits reporting their LSN, while the plain replica replays it.
my $s = session($primary);
$s->q('SET rr_router.report_commit_lsn = on');
for my $i (1 .. 30)
{
	$s->q("INSERT INTO t(v) VALUES ('row $i')");
	sleep(0.1);
}
my $token = $s->q('SELECT rr_last_commit_lsn()');
$s->quit;
$primary->wait_for_catchup($plain);
$primary->wait_for_catchup($full);

is($plain->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE 'row %'"),
	'30', 'a replica without the library replays a primary with it');
# The primary's heartbeat keeps arriving: replay catches up with receipt
# within moments, not at one fixed instant.
ok( poll_until(
		$plain, 'SELECT pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()',
		't', 30),
	'... up to everything it received');
is($plain->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'rr_router'"),
	'1', '... including CREATE EXTENSION');
ok(!$plain->log_contains(qr/PANIC|FATAL:.*startup|invalid resource manager/),
	'... without replay errors in its log');
is($full->safe_psql('postgres', "SELECT rr_wait_for_lsn('$token', 10000)"),
	't', 'the replica with the library waits for the same token');
check_not_loaded($plain, 'replica without the library');

# --- primary without the library, replica with it ------------------------

my $bare = rr_primary('bare_primary', preload => 0, extension => 0);
$bare->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my ($ret, $out, $err) =
  $bare->psql('postgres', 'CREATE EXTENSION rr_router');
is($ret, 0, 'CREATE EXTENSION works without the library preloaded')
  or diag $err;
check_not_loaded($bare, 'primary without the library');

my $with = rr_replica($bare, 'lib_replica');
for my $i (1 .. 10)
{
	$bare->safe_psql('postgres', "INSERT INTO t(v) VALUES ('bare $i')");
}
my $lsn = $bare->lsn('write');
is($with->safe_psql('postgres', "SELECT rr_wait_for_lsn('$lsn', 10000)"),
	't', 'a replica with the library waits on a primary without it');
is($with->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE 'bare %'"),
	'10', '... and replays its writes');
is($with->safe_psql('postgres', 'SELECT role FROM rr_status'),
	'replica', '... and knows it is a replica');
$bare->wait_for_catchup($with);
ok(!$with->log_contains(qr/PANIC|invalid resource manager/),
	'... without replay errors in its log');

done_testing();
