
# Copyright (c) 2026, rr_router contributors
#
# rr_staleness() is an upper bound: it must never under-report.  Checked
# against ground truth, with a real primary and replica on the same host
# (so one clock, no offset), under write load, with replay paused, with
# recovery_min_apply_delay, with the walreceiver cut off, with the primary
# stopped, and across restarts (clean and crash) of the replica (also while
# it is behind, and while the primary is down) and of the primary.
#
# Ground truth: a writer on the primary (a procedure that commits once per
# loop) appends a row (seq, ts = clock_timestamp()) every few milliseconds,
# one transaction at a time.  On the replica the sampler first takes, in
# one statement, clock_timestamp() and rr_staleness(), giving the claimed
# bound B = clock - staleness ("every transaction committed before B is
# visible"); then, in a later statement, the newest visible row k.  The
# writer reads ts for row k+2 only after the commit of row k+1 returned, so
# row k+1 had committed before ts(k+2).  Row k+1 is not visible, so if
# ts(k+2) < B the bound under-reported: a transaction committed before B is
# missing.  That check is exact: it needs no allowance for the writer's
# period or scheduling noise, so it cannot fail by chance and it catches any
# under-report larger than one writer period.  (The looser form,
# ts(k) >= B - (writer period + epsilon), is implied by it; its margin is
# printed with note().)  B itself is taken with clock_timestamp() read before
# rr_staleness() reads its clock, so B is never later than the server's
# as_of.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $hb_ms = 200;
my $writer_period_ms = 5;

my $primary = rr_primary(
	'primary',
	conf => "rr_router.heartbeat_interval = '${hb_ms}ms'\n"
	  . "log_statement = 'ddl'");
$primary->safe_psql(
	'postgres', qq(
CREATE TABLE gt_log(seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    ts timestamptz NOT NULL);
CREATE TABLE gt_ctl(stop bool NOT NULL);
INSERT INTO gt_ctl VALUES (false);
CREATE PROCEDURE gt_writer(period_ms int) LANGUAGE plpgsql AS \$\$
BEGIN
  LOOP
    INSERT INTO gt_log(ts) VALUES (clock_timestamp());
    COMMIT;
    EXIT WHEN (SELECT stop FROM gt_ctl);
    PERFORM pg_sleep(period_ms / 1000.0);
  END LOOP;
END \$\$;
));
my $replica = rr_replica($primary, 'replica', conf => "log_statement = 'ddl'");

# --- ground truth ---------------------------------------------------------

my $writer;

sub start_writer
{
	$primary->safe_psql('postgres', 'UPDATE gt_ctl SET stop = false');
	$writer = bg_psql($primary, "CALL gt_writer($writer_period_ms);",
		app => 'gt_writer');
	# wait for its first rows, so every phase starts under load
	my $n = $primary->safe_psql('postgres', 'SELECT count(*) FROM gt_log');
	poll_until($primary, "SELECT count(*) > $n + 5 FROM gt_log", 't', 30)
	  or die 'the ground-truth writer does not write';
	return;
}

sub stop_writer
{
	$primary->safe_psql('postgres', 'UPDATE gt_ctl SET stop = true');
	my $r = bg_finish($writer, 30);
	note "writer ended: rc " . ($r->{rc} // 'killed') . " $r->{err}";
	return;
}

# Every sample taken on the replica, in order:
# { phase, c (server clock, us), st (staleness us, undef if NULL),
#   seq (newest visible row, 0 if none), ts (its ts, us) }.
my @samples;

# Run one query on the replica through session $s; undef on an error (none
# is expected: every error is kept and reported at the end).
my @errors;

sub rq
{
	my ($s, $sql) = @_;
	my ($out, $err) = $s->q_err($sql);
	return $out if $err eq '';
	push @errors, "$sql: $err";
	return undef;
}

# Take one sample: the bound first, then in a later statement the data.
sub take_sample
{
	my ($s, $phase) = @_;
	my $b = rq($s,
		    'SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8, '
		  . '(extract(epoch FROM rr_staleness()) * 1000000)::int8');
	return undef unless defined $b;
	my ($c, $st) = split /\|/, $b, -1;
	my $d = rq($s,
		    'SELECT seq, (extract(epoch FROM ts) * 1000000)::int8 '
		  . 'FROM gt_log ORDER BY seq DESC LIMIT 1');
	return undef unless defined $d;
	my ($seq, $ts) = split /\|/, $d;
	my $smp = {
		phase => $phase,
		c => $c,
		st => ($st eq '' ? undef : $st),
		seq => $seq // 0,
		ts => $ts
	};
	push @samples, $smp;
	return $smp;
}

# Sample for $secs seconds (every ~5ms); returns the samples taken.
sub sample_for
{
	my ($s, $phase, $secs) = @_;
	my @got;
	my $end = time() + $secs;
	while (time() < $end)
	{
		my $smp = take_sample($s, $phase);
		push @got, $smp if defined $smp;
		usleep(5_000);
	}
	return @got;
}

# rr_status.as_of on the replica, in microseconds ('' when NULL).
sub as_of_us
{
	my ($s) = @_;
	return rq($s,
		'SELECT (extract(epoch FROM as_of) * 1000000)::int8 FROM rr_status');
}

sub wait_fresh
{
	my ($what) = @_;
	my ($ok, $secs) = poll_until($replica,
		"SELECT rr_staleness() < '1s'", 't', 60);
	ok($ok, "$what: staleness comes back under 1s");
	note sprintf('%s: fresh again after %.2f s', $what, $secs);
	return;
}

# While as_of cannot move (nothing replayable arrives), staleness must grow
# with the clock: as_of stays put and every bound is at or before it.
sub check_frozen
{
	my ($what, $as_of0, $as_of1, @smp) = @_;
	is($as_of1, $as_of0, "$what: rr_status.as_of does not move");
	my @known = grep { defined $_->{st} } @smp;
	cmp_ok(scalar(@known), '>', 20, "$what: samples taken");
	my ($drops, $late) = (0, 0);
	for my $i (0 .. $#known)
	{
		$late++ if $known[$i]{c} - $known[$i]{st} > $as_of0;
		$drops++ if $i > 0 && $known[$i]{st} < $known[$i - 1]{st};
	}
	is($drops, 0, "$what: staleness never drops");
	is($late, 0, "$what: no bound is later than as_of");
	my ($f, $l) = ($known[0], $known[-1]);
	my $grew = ($l->{st} - $f->{st}) / 1e6;
	my $clock = ($l->{c} - $f->{c}) / 1e6;
	note sprintf('%s: staleness %.3f s -> %.3f s while the clock moved %.3f s',
		$what, $f->{st} / 1e6, $l->{st} / 1e6, $clock);
	cmp_ok($grew, '>=', $clock - 0.005, "$what: staleness grows with the clock");
	return;
}

# --- 1. write load ----------------------------------------------------------

start_writer();
my $s = session($replica);
my @load = sample_for($s, 'load', 3);
my @st = sort { $a <=> $b } map { $_->{st} } grep { defined $_->{st} } @load;
is(scalar(@st), scalar(@load), 'under load: staleness is never NULL');
note sprintf('under load: %d samples, staleness p50 %.1f ms, max %.1f ms',
	scalar(@st), $st[ int(@st / 2) ] / 1000, $st[-1] / 1000);
cmp_ok($st[-1] / 1e6, '<', 2, 'under load: staleness stays small (< 2 s)');

# --- 2. replay paused ------------------------------------------------------

pause_replay($replica);
usleep(100_000);
my $a0 = as_of_us($s);
my @paused = sample_for($s, 'paused', 2);
my $a1 = as_of_us($s);
check_frozen('replay paused', $a0, $a1, @paused);
cmp_ok($paused[-1]{st} / 1e6, '>=', 1.9,
	'replay paused: staleness at least the 2 s of the pause');
is($replica->safe_psql('postgres', "SELECT rr_is_fresh('1s')"),
	'f', 'replay paused: rr_is_fresh(1s) is false');
resume_replay($replica);
sample_for($s, 'resumed', 1);
wait_fresh('after resume');

# --- 3. recovery_min_apply_delay ------------------------------------------

$replica->safe_psql('postgres',
	"ALTER SYSTEM SET recovery_min_apply_delay = '1s';\n"
	  . 'SELECT pg_reload_conf()');
ok(poll_until($replica, "SELECT rr_staleness() >= '0.9s'", 't', 30),
	'apply delay: staleness reaches the delay');
sample_for($s, 'delay_ramp', 0.5);
my @delayed = sample_for($s, 'delayed', 2);
my @dst = sort { $a <=> $b } map { $_->{st} // 0 } @delayed;
note sprintf('apply delay 1s: %d samples, staleness min %.3f s, median %.3f s',
	scalar(@delayed), $dst[0] / 1e6, $dst[ int(@dst / 2) ] / 1e6);
cmp_ok($dst[ int(@dst / 2) ] / 1e6, '>=', 0.9,
	'apply delay 1s under write load: staleness is about 1 s (median >= 0.9 s)');
# (each sample is also held to the delay itself in the final check below)
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET recovery_min_apply_delay;\n"
	  . 'SELECT pg_reload_conf()');
sample_for($s, 'undelay', 1);
wait_fresh('after removing the delay');

# --- 4. walreceiver cut off -----------------------------------------------

$replica->safe_psql('postgres',
	"ALTER SYSTEM SET primary_conninfo = 'host=/nonexistent port=1';\n"
	  . 'SELECT pg_reload_conf()');
usleep(200_000);
$replica->safe_psql('postgres',
	'SELECT pg_terminate_backend(pid) FROM pg_stat_wal_receiver');
ok( poll_until(
		$replica,
		'SELECT NOT EXISTS (SELECT FROM pg_stat_wal_receiver '
		  . "WHERE status = 'streaming') "
		  . 'AND pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()',
		't', 30),
	'walreceiver gone, everything received is replayed');
# WAL received but not yet replayed can still move as_of: let it settle.
sample_for($s, 'cut_settle', 0.3);
$a0 = as_of_us($s);
# kill any walreceiver a retry may have started (the bad conninfo keeps it
# from connecting, but be thorough), repeatedly
my @cut;
for my $i (1 .. 4)
{
	$replica->safe_psql('postgres',
		'SELECT pg_terminate_backend(pid) FROM pg_stat_wal_receiver');
	push @cut, sample_for($s, 'cut', 0.5);
}
$a1 = as_of_us($s);
check_frozen('walreceiver cut off', $a0, $a1, @cut);
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET primary_conninfo;\n" . 'SELECT pg_reload_conf()');
sample_for($s, 'reconnect', 1);
wait_fresh('after reconnecting');

# Kill the walreceiver again and again while it reconnects and catches up.
my $kills = 0;
for my $i (1 .. 8)
{
	$kills += $replica->safe_psql('postgres',
		'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_wal_receiver');
	sample_for($s, 'walreceiver_killed', 0.25);
}
note "walreceiver killed $kills times";
cmp_ok($kills, '>=', 2, 'the walreceiver was killed repeatedly');
wait_fresh('after the walreceiver kills');

# --- 5. primary stopped, replica restarted while it is down ----------------

# the writer dies with the primary
$primary->stop('fast');
my $t_stop = time() * 1e6;
bg_finish($writer, 10);
sample_for($s, 'pstop_settle', 0.3);
$a0 = as_of_us($s);
my @pstop = sample_for($s, 'primary_stopped', 2);
$a1 = as_of_us($s);
check_frozen('primary stopped', $a0, $a1, @pstop);
my $early = grep { $_->{c} - $_->{st} > $t_stop } @pstop;
is($early, 0,
	'primary stopped: every bound is before the moment the primary stopped');
cmp_ok($a0, '<=', $t_stop, 'primary stopped: as_of is before the stop');
$s->quit;

# A restart wipes what the replica knew: it must re-learn as_of from the
# WAL it replays again, never invent a recent one.
$replica->restart;
$s = session($replica);
my @rst = sample_for($s, 'replica_restart_primary_down', 1);
my $nulls = grep { !defined $_->{st} } @rst;
my $bad = grep { defined $_->{st} && $_->{c} - $_->{st} > $t_stop } @rst;
note sprintf(
	'replica restarted while the primary is down: %d samples, %d NULL, '
	  . 'first staleness %s',
	scalar(@rst), $nulls,
	defined $rst[0]{st} ? sprintf('%.3f s', $rst[0]{st} / 1e6) : 'NULL');
cmp_ok(scalar(@rst), '>', 5, 'replica restarted, primary down: samples taken');
is($bad, 0,
	'replica restarted, primary down: staleness is NULL or reaches back '
	  . 'before the primary stopped');
is($replica->safe_psql('postgres', "SELECT rr_is_fresh('1s')"),
	'f', 'replica restarted, primary down: not fresh');

$primary->start;
start_writer();
sample_for($s, 'primary_back', 1.5);
wait_fresh('primary back');

# --- 6. replica restarts under load -----------------------------------------

for my $mode ('fast', 'immediate')
{
	$s->quit;
	$replica->stop($mode);
	usleep(300_000);
	$replica->start;
	$s = session($replica);
	my @r = sample_for($s, "replica_restart_$mode", 1);
	my $n = grep { !defined $_->{st} } @r;
	note sprintf('replica restart (%s) under load: %d samples, %d NULL, '
		  . 'first staleness %s',
		$mode, scalar(@r), $n,
		defined $r[0]{st} ? sprintf('%.3f s', $r[0]{st} / 1e6) : 'NULL');
	cmp_ok(scalar(@r), '>', 5, "replica restart ($mode): samples taken");
	sample_for($s, "replica_restart_${mode}_2", 0.5);
	wait_fresh("replica restart ($mode)");
}

# A replica that restarts while it is behind (a 1s apply delay, under load)
# must not start out claiming to be current.
$replica->safe_psql('postgres',
	"ALTER SYSTEM SET recovery_min_apply_delay = '1s'");
$s->quit;
my $t_rs = time() * 1e6;
$replica->restart;
$s = session($replica);
my @rd = sample_for($s, 'replica_restart_delayed', 1.5);
my @rdk = grep { defined $_->{st} } @rd;
note sprintf('replica restart with a 1s apply delay: %d samples, %d NULL, '
	  . 'staleness (ms) / newest visible row: %s',
	scalar(@rd), @rd - @rdk,
	join(' ', map { sprintf('%.0f/%d', $_->{st} / 1000, $_->{seq}) } @rdk));
cmp_ok(scalar(@rdk), '>', 5, 'replica restart with a 1s delay: samples taken');
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET recovery_min_apply_delay;\n"
	  . 'SELECT pg_reload_conf()');
sample_for($s, 'replica_restart_undelay', 0.5);
wait_fresh('replica restart with a delay');

# --- 7. primary restarts under load -----------------------------------------

for my $mode ('fast', 'immediate')
{
	$primary->stop($mode);
	bg_finish($writer, 10);
	sample_for($s, "primary_restart_$mode", 0.5);
	$primary->start;
	is($primary->safe_psql('postgres',
			"SELECT rr_staleness() = '0', rr_is_fresh('0')"),
		"t|t", "primary restarted ($mode): staleness 0 and fresh on the primary");
	start_writer();
	sample_for($s, "primary_restart_${mode}_back", 1.5);
	wait_fresh("primary restart ($mode)");
}

sample_for($s, 'final', 1);
stop_writer();
$s->quit;

# --- the exact check --------------------------------------------------------

# seq -> ts of every row the writer committed.
my @rows = map { [ split /\|/ ] } split /\n/,
  $primary->safe_psql('postgres',
	'SELECT seq, (extract(epoch FROM ts) * 1000000)::int8 FROM gt_log ORDER BY seq'
  );
my %idx;
$idx{ $rows[$_][0] } = $_ for 0 .. $#rows;
note sprintf('ground truth: %d rows committed by the writer', scalar(@rows));

my %phase_order;
my @phases = grep { !$phase_order{$_}++ } map { $_->{phase} } @samples;
my %stat;
for my $smp (@samples)
{
	my $p = $smp->{phase};
	$stat{$p} //= {
		n => 0,
		null => 0,
		checked => 0,
		bad => [],
		slack => undef,
		margin => undef
	};
	my $x = $stat{$p};
	$x->{n}++;
	if (!defined $smp->{st})
	{
		$x->{null}++;
		next;
	}
	my $b = $smp->{c} - $smp->{st};
	my $i = $smp->{seq} ? $idx{ $smp->{seq} } : -1;
	die "visible row $smp->{seq} not on the primary" unless defined $i;
	next unless $i + 2 <= $#rows;
	$x->{checked}++;
	my $slack = $rows[ $i + 2 ][1] - $b;
	$x->{slack} = $slack if !defined $x->{slack} || $slack < $x->{slack};
	if ($i >= 0)
	{
		my $margin = $b - $rows[$i][1];
		$x->{margin} = $margin
		  if !defined $x->{margin} || $margin > $x->{margin};
	}
	push @{ $x->{bad} },
	  sprintf(
		'B=%d (staleness %d us) but row %d (ts %d) not visible although '
		  . 'row %d began at %d, %d us before B',
		$b, $smp->{st}, $rows[ $i + 1 ][0], $rows[ $i + 1 ][1],
		$rows[ $i + 2 ][0], $rows[ $i + 2 ][1], -$slack)
	  if $slack < 0;
}

# With recovery_min_apply_delay D the replica cannot have applied a commit
# made after c - D by time c, so the first row that began after c - D (call
# its start ts_j; that row's commit, or an earlier one, is still pending) is
# newer than anything replayed: staleness >= c - ts_j (less 50ms: a
# heartbeat may read the clock after a commit did and still precede it in
# WAL, if the committing backend is descheduled in between).  Unlike a fixed
# ">= 0.9 s" this holds whatever pauses the writer takes.  Asserted for the
# reload-driven delay phase; only reported right after a restart (it then
# also depends on the server applying the delay from the first commit).
sub first_row_after
{
	my ($t) = @_;
	my ($lo, $hi) = (0, scalar(@rows));
	while ($lo < $hi)
	{
		my $mid = int(($lo + $hi) / 2);
		if ($rows[$mid][1] > $t) { $hi = $mid } else { $lo = $mid + 1 }
	}
	return $lo <= $#rows ? $rows[$lo][1] : undef;
}

for my $p (qw(delayed replica_restart_delayed))
{
	my ($n, @short) = (0);
	for my $smp (grep { $_->{phase} eq $p && defined $_->{st} } @samples)
	{
		# after a restart the delay covers only commits made since
		next if $p eq 'replica_restart_delayed' && $smp->{c} - 1e6 < $t_rs;
		my $tj = first_row_after($smp->{c} - 1_000_000);
		next unless defined $tj;
		$n++;
		my $lb = $smp->{c} - $tj;
		push @short, sprintf('staleness %.1f ms < %.1f ms', $smp->{st} / 1000,
			$lb / 1000)
		  if $smp->{st} < $lb - 50_000;
	}
	note sprintf('%s: %d samples held to the 1 s apply delay, %d short',
		$p, $n, scalar(@short));
	if ($p eq 'delayed')
	{
		cmp_ok($n, '>', 20, "$p: samples held to the apply delay");
		is(scalar(@short), 0,
			"$p: staleness reflects the 1 s apply delay at every sample")
		  or diag join("\n", @short[ 0 .. min(9, $#short) ]);
	}
	elsif (@short)
	{
		note join("\n", @short[ 0 .. min(9, $#short) ]);
	}
}

my $total_checked = 0;
for my $p (@phases)
{
	my $x = $stat{$p};
	$total_checked += $x->{checked};
	note sprintf(
		'%-34s %4d samples, %3d NULL, %4d checked; closest approach %s; '
		  . 'largest B - ts(visible) %s',
		$p, $x->{n}, $x->{null}, $x->{checked},
		defined $x->{slack} ? sprintf('%.1f ms', $x->{slack} / 1000) : '-',
		defined $x->{margin} ? sprintf('%.1f ms', $x->{margin} / 1000) : '-');
	is(scalar(@{ $x->{bad} }), 0, "$p: staleness never under-reports")
	  or diag join("\n", @{ $x->{bad} }[ 0 .. min(9, $#{ $x->{bad} }) ]);
}
cmp_ok($total_checked, '>', 1000, 'the exact check ran on many samples');
for my $p (qw(load paused delayed cut walreceiver_killed primary_stopped))
{
	cmp_ok($stat{$p}{checked}, '>', 20, "$p: the exact check ran");
}

sub min { return $_[0] < $_[1] ? $_[0] : $_[1] }

is(scalar(@errors), 0, 'no query of the sampler failed')
  or diag join("\n", @errors[ 0 .. min(9, $#errors) ]);
ok(!$replica->log_contains(qr/PANIC|server process .* was terminated by signal/),
	'no crash in the replica log');
ok(!$primary->log_contains(qr/PANIC|server process .* was terminated by signal/),
	'no crash in the primary log');

$replica->stop;
$primary->stop;
done_testing();
