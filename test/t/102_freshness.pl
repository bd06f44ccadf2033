
# Copyright (c) 2026, rr_router contributors
#
# rr_staleness() and rr_is_fresh() on a healthy pair and at the edges:
#  - tightness: on an idle primary the heartbeat keeps a replica's staleness
#    within 2.5 heartbeat intervals (200ms and the default 1s);
#  - the staleness columns of rr_status agree with rr_staleness();
#  - rr_is_fresh against explicit bounds, rr_router.max_staleness and the
#    kill switch, on the primary and on the replica;
#  - bad bounds on a replica get clear errors and change nothing;
#  - a replica without rr_router keeps replaying the heartbeats of an idle
#    primary with it (replay_lsn catches up to the primary's flush LSN);
#  - NULL while unknown: a replica that has replayed nothing carrying a
#    primary time answers NULL / not fresh, and learns once a heartbeat
#    arrives.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = rr_primary('primary',
	conf => "rr_router.heartbeat_interval = '200ms'");
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica');
my $plain = rr_replica($primary, 'plain', preload => 0);

# Sample rr_staleness() on $node $n times, $gap_ms apart; returns seconds.
sub staleness_samples
{
	my ($node, $n, $gap_ms) = @_;
	my $s = session($node);
	my @v;
	for (1 .. $n)
	{
		push @v, $s->q('SELECT extract(epoch FROM rr_staleness())');
		usleep($gap_ms * 1000);
	}
	$s->quit;
	return @v;
}

sub set_heartbeat
{
	my ($value) = @_;
	$primary->safe_psql('postgres',
		"ALTER SYSTEM SET rr_router.heartbeat_interval = '$value';\n"
		  . 'SELECT pg_reload_conf()');
	poll_until($primary, 'SHOW rr_router.heartbeat_interval', $value, 10)
	  or die "heartbeat_interval did not become $value";
	return;
}

sub check_tight
{
	my ($hb_s, $n, $gap_ms) = @_;
	my @v = staleness_samples($replica, $n, $gap_ms);
	my @sorted = sort { $a <=> $b } @v;
	note sprintf(
		'idle pair, heartbeat %s s: %d samples, staleness min %.3f s, '
		  . 'p50 %.3f s, max %.3f s',
		$hb_s, scalar(@v), $sorted[0], $sorted[ int(@v / 2) ], $sorted[-1]);
	cmp_ok($sorted[-1], '<=', 2.5 * $hb_s,
		"idle pair, heartbeat $hb_s s: staleness stays within 2.5 intervals");
	cmp_ok($sorted[0], '>=', 0, '... and is never negative');
	return;
}

# --- tightness on an idle pair -----------------------------------------------

$primary->wait_for_catchup($replica);
usleep(500_000);
my $flush0 = $primary->lsn('flush');
my $t0 = time();
check_tight(0.2, 40, 50);

# The primary wrote nothing but heartbeats meanwhile.
my $flush1 = $primary->lsn('flush');
my $secs = time() - $t0;
my $bytes = lsn_bytes($flush1) - lsn_bytes($flush0);
note sprintf('idle primary: %d bytes of WAL in %.2f s at a 200ms heartbeat '
	  . '(%.0f bytes per heartbeat)', $bytes, $secs, $bytes / ($secs / 0.2));
note sprintf('so about %.0f kB of WAL per hour at the default 1 s interval',
	$bytes / ($secs / 0.2) * 3600 / 1024);
cmp_ok($bytes, '>', 0, 'the heartbeat moves WAL on an idle primary');

# The same at the default interval.
set_heartbeat('1s');
usleep(1_200_000);
check_tight(1, 16, 250);
set_heartbeat('200ms');

# --- a replica without rr_router follows the idle primary ------------------

# Idle primary, heartbeats only: the flush LSN moves, and the plain replica
# replays up to it (replay_lsn as the primary sees it, and as it reports).
usleep(300_000);
my $target = $primary->lsn('flush');
cmp_ok(lsn_cmp($target, $flush1), '>', 0,
	'the idle primary kept writing heartbeats');
my $plain_app = $plain->name;
ok( poll_until(
		$primary,
		"SELECT replay_lsn >= '$target' FROM pg_stat_replication "
		  . "WHERE application_name = '$plain_app'",
		't', 30),
	'replica without rr_router: pg_stat_replication.replay_lsn catches up '
	  . 'with the idle primary\'s flush LSN');
ok( poll_until(
		$plain, "SELECT pg_last_wal_replay_lsn() >= '$target'", 't', 30),
	'... and it has replayed the heartbeats itself');
$primary->safe_psql('postgres', "INSERT INTO t(v) VALUES ('after heartbeats')");
$primary->wait_for_catchup($plain);
is($plain->safe_psql('postgres',
		"SELECT count(*) FROM t WHERE v = 'after heartbeats'"),
	'1', '... and rows written after them still arrive');
ok(!$plain->log_contains(qr/PANIC|FATAL|invalid resource manager|rmgr/),
	'... with no replay error in its log');

# --- rr_status agrees with rr_staleness --------------------------------------

my $row = $replica->safe_psql('postgres',
	    'SELECT staleness IS NOT NULL, as_of IS NOT NULL, '
	  . 'abs(extract(epoch FROM clock_timestamp() - staleness - as_of)) < 0.1, '
	  . "staleness <= '2s', "
	  . 'clock_offset IS NOT NULL, '
	  . "abs(extract(epoch FROM clock_offset)) < 1 FROM rr_status");
is($row, 't|t|t|t|t|t',
	'replica rr_status: staleness = now - as_of, small; clock_offset known '
	  . 'and small on one host');
note 'replica clock_offset: '
  . $replica->safe_psql('postgres', 'SELECT clock_offset FROM rr_status');
is( $primary->safe_psql(
		'postgres', "SELECT role, staleness = '0' FROM rr_status"),
	'primary|t',
	'primary rr_status: staleness 0');

# --- rr_is_fresh on the replica -----------------------------------------------

my $s = session($replica);
is($s->q("SELECT rr_is_fresh('5s'), rr_is_fresh('0'), rr_is_fresh()"),
	't|f|t', "replica: fresh within 5s and the default 1s, not within 0");
is($s->q('SELECT rr_is_fresh(NULL) = rr_is_fresh()'),
	't', 'replica: a NULL bound means rr_router.max_staleness');
$s->q("SET rr_router.max_staleness = '0'");
is($s->q('SELECT rr_is_fresh(), rr_is_fresh(NULL)'),
	'f|f', 'replica: max_staleness 0 makes the default check fail');
$s->q("SET rr_router.max_staleness = '1h'");
is($s->q('SELECT rr_is_fresh(), rr_is_fresh(NULL)'),
	't|t', 'replica: max_staleness 1h makes it pass');
$s->q('RESET rr_router.max_staleness');

# Make it stale for real: pause replay past the default bound.
pause_replay($replica);
ok(poll_until($replica, "SELECT rr_staleness() > '1.3s'", 't', 30),
	'paused: staleness passes 1.3 s');
is( $s->q(
		"SELECT rr_is_fresh('1s'), rr_is_fresh(), rr_is_fresh('1h'), "
		  . "rr_is_fresh('-1 day +25 hours')"),
	'f|f|t|t',
	'paused: not fresh within 1s or the default, fresh within an hour');
is( $s->q(
		    "SELECT rr_is_fresh(d) = (rr_staleness() <= d) FROM "
		  . "(VALUES ('0.5s'::interval), ('1s'), ('1 min'), ('1 day')) v(d)"),
	"t\nt\nt\nt",
	'paused: rr_is_fresh(d) agrees with rr_staleness() <= d');
resume_replay($replica);
ok(poll_until($replica, "SELECT rr_is_fresh('1s')", 't', 30),
	'resumed: fresh again');

# Kill switch on the replica.
$t0 = time();
$replica->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.replica_reads = off;\n"
	  . 'SELECT pg_reload_conf()');
my ($ok, $took) =
  poll_until($replica, "SELECT rr_is_fresh('100 years')", 'f', 10);
ok($ok, 'kill switch off: rr_is_fresh is false even for 100 years');
note sprintf('kill switch took effect %.3f s after the reload', $took);
is( $s->q(
		"SELECT rr_is_fresh(), rr_is_fresh(NULL), rr_is_fresh('0'), "
		  . "rr_staleness() IS NOT NULL AND rr_staleness() < '5s', "
		  . 'replica_reads FROM rr_status'),
	'f|f|f|t|f',
	'kill switch off: every check false, staleness still reported');
my ($out, $err) = $s->q_err("SELECT rr_is_fresh('-1s')");
is(sqlstate_of($err), '22023',
	'kill switch off: a negative bound is still an error');
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.replica_reads;\n"
	  . 'SELECT pg_reload_conf()');
ok(poll_until($replica, "SELECT rr_is_fresh('100 years')", 't', 10),
	'kill switch on again: fresh again');

# --- bad bounds on the replica ------------------------------------------------

for my $bad ('-1 ms', '1 day -25 hours', '-178000000 years', '-1 mon')
{
	($out, $err) = $s->q_err("SELECT rr_is_fresh('$bad')");
	is(sqlstate_of($err), '22023', "replica: rr_is_fresh('$bad') is 22023");
	like($err, qr/ERROR:\s+22023:\s+"max_staleness" must not be negative/,
		'... with a clear message');
	is($out, '', '... and no result');
}
($out, $err) = $s->q_err("SELECT rr_is_fresh('soon')");
is(sqlstate_of($err), '22007', "replica: rr_is_fresh('soon') is 22007");
($out, $err) = $s->q_err("SET rr_router.max_staleness = '-1s'");
is(sqlstate_of($err), '22023', 'replica: SET max_staleness -1s is 22023');
is($s->q('SHOW rr_router.max_staleness'),
	'1s', '... and leaves max_staleness at 1s');
is( $s->q(
		"SELECT rr_is_fresh('178000000 years'), rr_is_fresh(NULL::interval), "
		  . "rr_staleness() < '5s'"),
	't|t|t',
	'replica: huge and NULL bounds are fine, the session still works');
$s->quit;

# --- rr_is_fresh on the primary ------------------------------------------------

is( $primary->safe_psql(
		'postgres',
		"SELECT rr_staleness() = '0', rr_is_fresh('0'), rr_is_fresh(), "
		  . 'rr_is_fresh(NULL)'),
	't|t|t|t',
	'primary: staleness 0, always fresh');
$primary->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.replica_reads = off;\n"
	  . 'SELECT pg_reload_conf()');
poll_until($primary, 'SELECT replica_reads FROM rr_status', 'f', 10);
is( $primary->safe_psql(
		'postgres', "SELECT rr_staleness() = '0', rr_is_fresh('0'), rr_is_fresh()"),
	't|t|t',
	'primary with the kill switch off: still staleness 0 and fresh');
(undef, $out, $err) = $primary->psql(
	'postgres', "SELECT rr_is_fresh('-1s')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
is(sqlstate_of($err), '22023', 'primary: a negative bound is an error too');
$primary->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.replica_reads;\n"
	  . 'SELECT pg_reload_conf()');

# --- NULL while unknown ---------------------------------------------------------

# A replica built from a backup during which the primary wrote nothing that
# carries its clock (no commit, no heartbeat) has nothing to bound staleness
# by until the primary speaks, although it streams from the primary and
# receives its keepalives.
set_heartbeat('0');
$primary->safe_psql('postgres', 'CHECKPOINT');
my $blank = rr_replica($primary, 'blank');
usleep(500_000);
is( $blank->safe_psql(
		'postgres',
		"SELECT rr_staleness() IS NULL, rr_is_fresh('100 years'), "
		  . 'staleness IS NULL, as_of IS NULL FROM rr_status'),
	't|f|t|t',
	'never heard from a primary: staleness NULL, not fresh, rr_status NULL');
set_heartbeat('200ms');
ok( poll_until(
		$blank,
		"SELECT rr_staleness() IS NOT NULL AND rr_is_fresh('2s')", 't', 30),
	'after the first heartbeat: staleness known and small');

ok(!$replica->log_contains(qr/PANIC|server process .* was terminated by signal/),
	'no crash in the replica log');

$blank->stop;
$plain->stop;
$replica->stop;
$primary->stop;
done_testing();
