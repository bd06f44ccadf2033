
# Copyright (c) 2026, rr_router contributors
#
# rr_lag_history and rr_lag_stats on a real replica: after rr_reset_stats()
# the ring refills one sample per rr_router.sample_interval, newest first;
# an injected spike (replay paused ~2 s while the primary writes) shows in
# the history as staleness growing with the clock and in rr_lag_stats as
# staleness_max and lag_bytes_max; the percentiles are ordered; a changed
# sample_interval changes the spacing; rr_reset_stats() clears the ring and
# is not for everyone.

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
$primary->safe_psql('postgres',
	    'CREATE TABLE t(id serial, v text);'
	  . 'CREATE ROLE mon LOGIN IN ROLE pg_monitor;'
	  . 'CREATE ROLE nobody LOGIN');
my $replica = rr_replica($primary, 'replica');

# The ring as a list of hashes, newest first as the view returns it (the
# view's own order: no ORDER BY).  Times in seconds.
sub history
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		    'SELECT extract(epoch FROM sampled_at), replay_lsn, lag_bytes, '
		  . 'extract(epoch FROM staleness) FROM rr_lag_history');
	return map {
		my ($at, $lsn, $lag, $st) = split /\|/, $_, -1;
		{ at => $at, lsn => $lsn, lag => $lag, st => $st }
	} split /\n/, $out;
}

# rr_lag_stats as a list of hashes, in the view's order.  Times in seconds.
sub stats
{
	my ($node, $before) = @_;
	my $out = $node->safe_psql('postgres',
		    ($before // '')
		  . 'SELECT period, samples, extract(epoch FROM staleness_p50), '
		  . 'extract(epoch FROM staleness_p90), extract(epoch FROM staleness_p99), '
		  . 'extract(epoch FROM staleness_max), lag_bytes_max FROM rr_lag_stats');
	return map {
		my @f = split /\|/, $_, -1;
		{
			period => $f[0],
			samples => $f[1],
			p50 => $f[2],
			p90 => $f[3],
			p99 => $f[4],
			max => $f[5],
			lag => $f[6]
		}
	} split /\n/, $out;
}

sub median
{
	my @s = sort { $a <=> $b } @_;
	return $s[ int(@s / 2) ];
}

# Gaps between consecutive samples (newest first), in seconds; counts
# rows out of order.
sub gaps
{
	my @h = @_;
	my (@g, $disorder);
	$disorder = 0;
	for my $i (1 .. $#h)
	{
		my $d = $h[ $i - 1 ]{at} - $h[$i]{at};
		$disorder++ if $d <= 0;
		push @g, $d;
	}
	return ($disorder, @g);
}

# --- reset ---------------------------------------------------------------------

$replica->safe_psql('postgres', 'SELECT rr_reset_stats()');
my $t_reset = time();
my @h = history($replica);
cmp_ok(scalar(@h), '<=', 3, 'right after rr_reset_stats() the ring is empty '
	  . '(or holds a sample or two)');

# --- baseline, then a spike ------------------------------------------------------

usleep(1_500_000);

my $t_pause = time();
pause_replay($replica);
my $t_paused = time();
my $lsn0 = $primary->lsn('insert');
$primary->safe_psql('postgres',
	"INSERT INTO t(v) SELECT repeat('x', 100) FROM generate_series(1, 2000)");
my $lsn1 = $primary->lsn('insert');
my $insert_bytes = lsn_bytes($lsn1) - lsn_bytes($lsn0);
ok( poll_until(
		$replica, "SELECT pg_last_wal_receive_lsn() >= '$lsn1'", 't', 30),
	'the replica received the writes made while paused');
usleep(2_000_000);
resume_replay($replica);
my $pause_secs = time() - $t_pause;
my $paused_secs = time() - $t_paused;
$primary->wait_for_catchup($replica);
usleep(1_000_000);
note sprintf('replay paused for %.2f s (%.2f s counting the pause call); '
	  . '%d bytes written meanwhile', $paused_secs, $pause_secs,
	$insert_bytes);

# --- rr_lag_stats ----------------------------------------------------------------

my $elapsed = time() - $t_reset;
my @st = stats($replica);
is(join(',', map { $_->{period} } @st),
	'00:01:00,00:05:00,00:15:00', 'rr_lag_stats: one row per window, in order');
for my $w (@st)
{
	note sprintf(
		'%s: %d samples, p50 %.3f s, p90 %.3f s, p99 %.3f s, max %.3f s, '
		  . 'lag_bytes_max %d',
		$w->{period}, $w->{samples}, $w->{p50}, $w->{p90}, $w->{p99},
		$w->{max}, $w->{lag});
	ok( $w->{p50} <= $w->{p90}
		  && $w->{p90} <= $w->{p99}
		  && $w->{p99} <= $w->{max},
		"$w->{period}: p50 <= p90 <= p99 <= max");
	cmp_ok($w->{p50}, '>=', 0, "$w->{period}: percentiles are not negative");
}
my $one = $st[0];
my $expect = $elapsed / 0.1;
note sprintf('%.2f s since the reset: about %d samples expected', $elapsed,
	$expect);
cmp_ok($one->{samples}, '>=', 0.5 * $expect,
	'1 min: about one sample per sample_interval (not too few)');
cmp_ok($one->{samples}, '<=', 1.1 * $expect + 3, '... (not too many)');
is($st[1]{samples} . '/' . $st[2]{samples},
	"$one->{samples}/$one->{samples}",
	'everything since the reset falls in every window');
cmp_ok($one->{max}, '>=', 1.9, '1 min: staleness_max covers the 2 s spike');
cmp_ok($one->{max}, '<=', $pause_secs + 1.5,
	'... without inventing a larger one');
cmp_ok($one->{p99}, '>=', 1, '1 min: p99 sees the spike');
cmp_ok($one->{p50}, '<=', $one->{max} - 0.5,
	'1 min: p50 is below the spike');
cmp_ok($one->{lag}, '>=', 0.9 * $insert_bytes,
	'1 min: lag_bytes_max covers the WAL received while paused');

# --- rr_lag_history ----------------------------------------------------------------

@h = history($replica);
my ($disorder, @g) = gaps(@h);
note sprintf('rr_lag_history: %d rows, gap median %.1f ms, min %.1f ms, '
	  . 'max %.1f ms',
	scalar(@h), 1000 * median(@g), 1000 * (sort { $a <=> $b } @g)[0],
	1000 * (sort { $b <=> $a } @g)[0]);
cmp_ok(abs(scalar(@h) - $one->{samples}), '<=', 3,
	'rr_lag_history holds the samples rr_lag_stats counts');
is($disorder, 0, 'rr_lag_history is newest first');
cmp_ok(median(@g), '>=', 0.08, 'samples are about sample_interval apart (>= 80ms)');
cmp_ok(median(@g), '<=', 0.15, '... (<= 150ms)');
cmp_ok((sort { $b <=> $a } @g)[0], '<', 1, 'no gap of a second in the ring');
cmp_ok($h[0]{at}, '>=', time() - 2, 'the newest sample is recent');
is(scalar(grep { $_->{st} eq '' } @h), 0, 'every replica sample has a staleness');

my $hmax = (sort { $b <=> $a } map { $_->{st} } @h)[0];
is($hmax, $one->{max}, 'the largest staleness in the history is staleness_max');
my $lsn_back = 0;
for my $i (1 .. $#h)
{
	$lsn_back++ if lsn_cmp($h[$i]{lsn}, $h[ $i - 1 ]{lsn}) > 0;
}
is($lsn_back, 0, 'replay_lsn never goes backwards in the history');

# During the pause the history shows staleness growing with the clock.
my @spike = grep { $_->{st} >= 0.5 && $_->{lag} > 0 } reverse @h;
my $off = 0;
my $pairs = 0;
for my $i (1 .. $#spike - 1)
{
	# replay did not move across these samples (nor right after them)
	next
	  unless $spike[ $i - 1 ]{lsn} eq $spike[$i]{lsn}
	  && $spike[$i]{lsn} eq $spike[ $i + 1 ]{lsn};
	my $dt = $spike[$i]{at} - $spike[ $i - 1 ]{at};
	my $ds = $spike[$i]{st} - $spike[ $i - 1 ]{st};
	$pairs++;
	$off++ if abs($ds - $dt) > 0.005;
}
note "spike: $pairs pairs of samples with replay standing still";
cmp_ok(scalar(@spike), '>=', 10, 'the spike spans many samples');
cmp_ok($pairs, '>=', 5, '... with replay standing still');
is($off, 0, 'while replay is paused, staleness grows as fast as sampled_at');

# --- sample_interval changes the spacing ------------------------------------

$replica->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.sample_interval = '50ms';\n"
	  . 'SELECT pg_reload_conf()');
usleep(1_500_000);
@h = history($replica);
($disorder, @g) = gaps(@h[ 0 .. 10 ]);
note sprintf('sample_interval 50ms: gap median %.1f ms', 1000 * median(@g));
cmp_ok(median(@g), '>=', 0.035, 'sample_interval 50ms: samples ~50ms apart (>= 35ms)');
cmp_ok(median(@g), '<=', 0.075, '... (<= 75ms)');
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.sample_interval;\n"
	  . 'SELECT pg_reload_conf()');

# --- who may read and reset -----------------------------------------------------

my ($ret, $out, $err) = $replica->psql(
	'postgres', 'SELECT rr_reset_stats()',
	extra_params => [ '-U', 'mon', '-v', 'VERBOSITY=verbose' ]);
is(sqlstate_of($err), '42501', 'pg_monitor may not reset the statistics');
($ret, $out, $err) = $replica->psql(
	'postgres', 'SELECT count(*) > 0 FROM rr_lag_history, rr_lag_stats',
	extra_params => [ '-U', 'mon' ]);
is($out, 't', 'pg_monitor may read rr_lag_history and rr_lag_stats');
($ret, $out, $err) = $replica->psql(
	'postgres', 'SELECT count(*) FROM rr_lag_stats',
	extra_params => [ '-U', 'nobody', '-v', 'VERBOSITY=verbose' ]);
is(sqlstate_of($err), '42501', 'an ordinary role may not read rr_lag_stats');
cmp_ok(scalar(history($replica)), '>', 20,
	'the ring is untouched by the refused reset');

# --- reset clears ------------------------------------------------------------------

# Reset and read in one session: between two psql processes on a loaded
# machine the worker may well take a few samples.
@st = stats($replica, "SELECT rr_reset_stats() \\g /dev/null\n");
cmp_ok($st[2]{samples}, '<=', 3, 'after rr_reset_stats() the windows are empty');
ok(!defined $st[2]{max} || $st[2]{max} eq '' || $st[2]{max} < 1,
	'... and the spike is gone');
usleep(500_000);
@st = stats($replica);
cmp_ok($st[0]{samples}, '>=', 2, '... and they refill');

# --- on the primary -----------------------------------------------------------------

is( $primary->safe_psql(
		'postgres',
		    'SELECT count(*) > 0, bool_and(staleness = \'0\'), '
		  . 'bool_and(replay_lsn IS NULL) FROM rr_lag_history'),
	't|t|t',
	'primary: history samples show staleness 0 and no replay position');
is( $primary->safe_psql(
		'postgres',
		"SELECT bool_and(staleness_max = '0' AND staleness_p50 = '0') FROM rr_lag_stats"),
	't',
	'primary: stats show staleness 0');

$replica->stop;
$primary->stop;
done_testing();
