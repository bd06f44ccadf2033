
# Copyright (c) 2025, rr_router contributors
#
# Read-your-writes through rr_wait_for_lsn on real replicas: hundreds of
# writes with zero misses, a lagging replica (recovery_min_apply_delay), and
# tokens taken with pg_current_wal_insert_lsn(), which may point just past a
# WAL page header that no record will ever end at.

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
quiet_primary($primary);
$primary->safe_psql('postgres',
	'CREATE TABLE ryw(id int PRIMARY KEY, v text); '
	  . 'CREATE TABLE pb(id serial PRIMARY KEY, v text)');

my $replica1 = rr_replica($primary, 'replica1');
my $replica2 = rr_replica($primary, 'replica2');
my $delayed = rr_replica($primary, 'delayed',
	conf => "recovery_min_apply_delay = '500ms'");

my $wsess = session($primary);
my %rsess = (
	replica1 => session($replica1),
	replica2 => session($replica2),
	delayed => session($delayed));

# Write row $id on the primary; return the token taken in the same session
# after the commit.
sub write_row
{
	my ($id) = @_;
	return $wsess->q(
		"INSERT INTO ryw VALUES ($id, 'v$id');\nSELECT rr_last_commit_lsn()");
}

# --- hundreds of writes, alternating between two replicas ----------------

my $n = 300;
my ($false_waits, $misses, $max_wait) = (0, 0, 0);
for my $i (1 .. $n)
{
	my $token = write_row($i);
	my $s = $rsess{ $i % 2 ? 'replica1' : 'replica2' };
	my $t0 = time();
	my $ok = $s->q("SELECT rr_wait_for_lsn('$token', 10000)");
	my $dt = time() - $t0;
	$max_wait = $dt if $dt > $max_wait;
	$false_waits++ if $ok ne 't';
	$misses++ if $s->q("SELECT count(*) FROM ryw WHERE id = $i") ne '1';
}
note sprintf('%d writes: slowest wait %.1f ms', $n, $max_wait * 1000);
is($false_waits, 0, "rr_wait_for_lsn returned true for all $n tokens");
is($misses, 0, "every one of $n writes was visible right after the wait");

# --- a lagging replica: naive reads miss, waited reads never do ----------

my $m = 15;
my ($naive_misses, $dmisses, $dfalse) = (0, 0, 0);
my @waits;
for my $i ($n + 1 .. $n + $m)
{
	my $token = write_row($i);
	my $s = $rsess{delayed};
	$naive_misses++ if $s->q("SELECT count(*) FROM ryw WHERE id = $i") eq '0';
	my $t0 = time();
	$dfalse++ if $s->q("SELECT rr_wait_for_lsn('$token', 10000)") ne 't';
	push @waits, time() - $t0;
	$dmisses++ if $s->q("SELECT count(*) FROM ryw WHERE id = $i") ne '1';
}
note sprintf('delayed replica: %d/%d naive reads missed; waits %s ms',
	$naive_misses, $m, join(' ', map { sprintf '%.0f', $_ * 1000 } @waits));
cmp_ok($naive_misses, '>', 0,
	'the delayed replica really lags (a naive read missed a fresh write)');
is($dfalse, 0, 'waits on the delayed replica all returned true');
is($dmisses, 0, 'reads after the wait on the delayed replica never missed');
cmp_ok((sort { $b <=> $a } @waits)[0], '>=', 0.2,
	'waiting on the delayed replica really waited for the apply delay');

# --- pg_current_wal_insert_lsn() tokens: never stall ---------------------

# Thousands of small writes, each followed at once by a wait for the insert
# position; nothing else writes WAL, so a token just past a page header
# would stall until the 5 s timeout if it were not treated as the boundary.
my ($pb_n, $pb_false, $pb_max, $pb_at_header) = (0, 0, 0, 0);
my $deadline = time() + 60;
my $s1 = $rsess{replica1};
while ($pb_n < 3000 && time() < $deadline)
{
	my $token = $wsess->q(
		"INSERT INTO pb(v) VALUES ('x');\nSELECT pg_current_wal_insert_lsn()");
	my $off = lsn_bytes($token) % 8192;
	$pb_at_header++ if $off == 24 || $off == 40;
	my $t0 = time();
	my $ok = $s1->q("SELECT rr_wait_for_lsn('$token', 5000)");
	my $dt = time() - $t0;
	$pb_max = $dt if $dt > $pb_max;
	if ($ok ne 't')
	{
		$pb_false++;
		diag "insert-position token $token (page offset $off) timed out";
	}
	$pb_n++;
}
note sprintf(
	'%d insert-position tokens, %d just past a page header, slowest wait %.1f ms',
	$pb_n, $pb_at_header, $pb_max * 1000);
cmp_ok($pb_n, '>=', 500, 'enough insert-position tokens were tried');
is($pb_false, 0, 'no insert-position token timed out');
cmp_ok($pb_max, '<', 2.5, 'no insert-position token stalled a wait');

# --- a token exactly one page header past the replayed position ----------

# Make the insert position land just past a page header: emit a logical
# message whose record ends exactly at a page boundary.  Returns the
# boundary, or undef if other WAL got in the way.
sub land_on_page_boundary
{
	my $prefix = 'rr';
	my ($delta0, $l0);
	for (1 .. 60)
	{
		my $pos = lsn_bytes($wsess->q('SELECT pg_current_wal_insert_lsn()'));
		my $off = $pos % 8192;
		return $pos - 24 if $off == 24 && defined $delta0;
		my $rem = 8192 - $off;
		if (!defined $delta0)
		{
			# Calibrate the record overhead with a message that stays on
			# this page (or move to a page where it will).
			if ($rem < 2000)
			{
				$wsess->q(
					"SELECT pg_logical_emit_message(false, '$prefix', repeat('f', 3000))"
				);
				next;
			}
			$l0 = 1000;
			$wsess->q(
				"SELECT pg_logical_emit_message(false, '$prefix', repeat('c', $l0))");
			my $pos1 =
			  lsn_bytes($wsess->q('SELECT pg_current_wal_insert_lsn()'));
			$delta0 = $pos1 - $pos;
			next;
		}
		# A record of $len payload bytes takes $delta0 - $l0 + $len bytes,
		# rounded up to 8, so this one ends exactly at the page boundary.
		my $len = $rem - ($delta0 - $l0);
		if ($len < 300)
		{
			$wsess->q(
				"SELECT pg_logical_emit_message(false, '$prefix', repeat('f', 600))"
			);
			next;
		}
		$wsess->q(
			"SELECT pg_logical_emit_message(false, '$prefix', repeat('b', $len))");
	}
	return undef;
}

my $pb_done = 0;
for my $attempt (1 .. 5)
{
	my $boundary = land_on_page_boundary();
	next unless defined $boundary;
	my $b_lsn = bytes_lsn($boundary);
	my $token = bytes_lsn($boundary + 24);
	note "insert position $token sits just past the page header at $b_lsn";

	# The record ends on a full page, so the WAL writer flushes it and the
	# replica replays exactly up to the boundary.
	poll_until($primary,
		"SELECT pg_current_wal_flush_lsn() >= '$b_lsn'", 't', 20)
	  or next;
	poll_until($replica1,
		"SELECT pg_last_wal_replay_lsn() >= '$b_lsn'", 't', 20)
	  or next;
	my $replay = $replica1->safe_psql('postgres',
		'SELECT pg_last_wal_replay_lsn()');
	# (compared as numbers: PostgreSQL 19 prints LSNs zero-padded)
	next
	  unless lsn_bytes($wsess->q('SELECT pg_current_wal_insert_lsn()')) ==
	  $boundary + 24
	  && lsn_bytes($replay) == $boundary;

	my $r = timed_sql($replica1, "SELECT rr_wait_for_lsn('$token', 5000)");
	my $r_past =
	  timed_sql($replica1, "SELECT rr_wait_for_lsn('$b_lsn'::pg_lsn + 32, 0)");
	my $r_next = timed_sql($replica1,
		"SELECT rr_wait_for_lsn('$b_lsn'::pg_lsn + 8192 + 24, 0)");

	# Only conclusive if no WAL was written meanwhile.
	next
	  unless lsn_bytes($wsess->q('SELECT pg_current_wal_insert_lsn()')) ==
	  $boundary + 24;
	note "wait for $token with replay at $replay took $r->{ms} ms";
	is($r->{out}, 't',
		'a token just past a page header is reached when replay is at the boundary'
	);
	cmp_ok($r->{ms}, '<', 1000, '... and the wait returns at once');
	is($r_past->{out}, 'f',
		'a position 32 bytes into the next page is not treated as replayed');
	is($r_next->{out}, 'f',
		'a header position one page further on is not treated as replayed');
	$pb_done = 1;
	last;
}
ok($pb_done, 'the page-boundary case was set up and checked');

# Same at a segment boundary, where the header is 40 bytes long:
# pg_switch_wal() leaves the insert position just past it.
my $seg_done = 0;
for my $attempt (1 .. 5)
{
	$wsess->q("INSERT INTO pb(v) VALUES ('s')");
	$wsess->q('SELECT pg_switch_wal()');
	my $token = $wsess->q('SELECT pg_current_wal_insert_lsn()');
	my $seg_start = bytes_lsn(lsn_bytes($token) - 40);
	next unless lsn_bytes($token) % (16 * 1024 * 1024) == 40;
	poll_until($replica1,
		"SELECT pg_last_wal_replay_lsn() >= '$seg_start'", 't', 20)
	  or next;
	my $r = timed_sql($replica1, "SELECT rr_wait_for_lsn('$token', 5000)");
	next unless $wsess->q('SELECT pg_current_wal_insert_lsn()') eq $token;
	note "segment-start token $token: $r->{out} in $r->{ms} ms";
	is($r->{out}, 't',
		'a token just past a segment header is reached at the segment boundary'
	);
	cmp_ok($r->{ms}, '<', 1000, '... and the wait returns at once');
	$seg_done = 1;
	last;
}
ok($seg_done, 'the segment-boundary case was set up and checked');

# On the primary every target is already visible.
is($wsess->q("SELECT rr_wait_for_lsn('FFFFFFFF/0', 5000)"),
	't', 'rr_wait_for_lsn returns true at once on a primary');

$_->quit for ($wsess, values %rsess);
done_testing();
