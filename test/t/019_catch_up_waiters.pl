
# Copyright (c) 2026, rr_router developers
#
# Waiters during a catch-up, where the startup process may hold a hand-over
# back while more WAL is already decoded (wait.c's NOTES, "Deferred
# hand-overs"): every waiter whose commit replay passes returns true and
# sees its row, and when replay is paused in the middle of the catch-up,
# every waiter whose target was replayed before the pause returns while
# replay stays paused, and only those.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

my $conf = qq(
max_connections = 120
recovery_prefetch = try
log_statement = none
);
my $primary = rr_primary('primary', conf => $conf);
$primary->safe_psql('postgres',
	'CREATE TABLE filler(id int, pad text); CREATE TABLE mark(id int)');
my $replica = rr_replica($primary, 'replica', conf => $conf);

# With replay paused, write $n commits of $rows filler rows each, every one
# followed by a commit of its own marking row $first + i; returns the
# tokens of the marking commits, in order.
sub backlog
{
	my ($n, $rows, $first) = @_;
	my $sql = '';
	for my $i (1 .. $n)
	{
		my $id = $first + $i;
		$sql .= "INSERT INTO filler SELECT g, repeat('x', 40) "
		  . "FROM generate_series(1, $rows) g;\n"
		  . "INSERT INTO mark VALUES ($id);\n"
		  . "SELECT rr_last_commit_lsn();\n";
	}
	my @tokens = split /\n/, $primary->safe_psql('postgres', $sql);
	die 'expected ' . $n . ' tokens, got ' . scalar(@tokens)
	  unless @tokens == $n;
	poll_until($replica,
		"SELECT pg_last_wal_receive_lsn() >= '$tokens[-1]'")
	  or die 'the replica did not receive the backlog';
	return @tokens;
}

# One background waiter per token: the wait, then the read of its row.
sub start_waiters
{
	my ($first, @tokens) = @_;
	my @w;
	for my $i (0 .. $#tokens)
	{
		my $id = $first + $i + 1;
		push @w,
		  bg_psql($replica,
			"SELECT rr_wait_for_lsn('$tokens[$i]', 120000);\n"
			  . "SELECT count(*) FROM mark WHERE id = $id;",
			app => "w$id");
	}
	ok(wait_waiters($replica, scalar(@tokens)),
		scalar(@tokens) . ' waiters queued behind the paused replay');
	return @w;
}

# Wait for the waiters at @idx until $deadline (epoch seconds): each must
# have answered true and then read its row.  Returns how many did not.
sub failed_waiters
{
	my ($w, $tokens, $deadline, @idx) = @_;
	my $failed = 0;
	for my $i (@idx)
	{
		my $left = $deadline - time();
		my $r = bg_finish($w->[$i], $left > 0.1 ? $left : 0.1);
		next if defined $r->{rc} && $r->{out} eq "t\n1";
		$failed++;
		diag "waiter $i (target $tokens->[$i]): rc "
		  . ($r->{rc} // 'killed')
		  . " out '$r->{out}' err '$r->{err}'";
	}
	return $failed;
}

# 1. The whole backlog replayed at once: everyone is woken and sees its row.
pause_replay($replica);
my $n = 40;
my @tokens = backlog($n, 500, 0);
my @w = start_waiters(0, @tokens);
resume_replay($replica);
is(failed_waiters(\@w, \@tokens, time() + 120, 0 .. $#w),
	0, "all $n waiters returned true and saw their row after the catch-up");
ok(wait_waiters($replica, 0), 'nobody is left in rr_waiters');

# 2. Replay paused in the middle of the catch-up: the waiters it has passed
# return while it stays paused, the others wait on.
pause_replay($replica);
$n = 60;
@tokens = backlog($n, 1000, 100);
@w = start_waiters(100, @tokens);
$replica->safe_psql('postgres',
	"SELECT pg_wal_replay_resume();\nSELECT pg_sleep(0.01);\n"
	  . 'SELECT pg_wal_replay_pause()');
poll_until($replica, 'SELECT pg_get_wal_replay_pause_state()', 'paused')
  or die 'replay did not pause';
my $at = $replica->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()');
my @passed = grep { lsn_cmp($tokens[$_], $at) <= 0 } 0 .. $#tokens;
note sprintf('replay paused at %s, past %d of %d targets',
	$at, scalar(@passed), $n);

# Woken by their own first sleep, another waiter's pass or the worker's
# pass within milliseconds; 5 s keeps a loaded machine out of it but not
# the 10 s backstop sleep, which would mean nobody woke them.
my %passed = map { $_ => 1 } @passed;
is(failed_waiters(\@w, \@tokens, time() + 5, @passed),
	0,
	'every waiter whose target was replayed before the pause returned true within 5 s and saw its row');
is($replica->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()'),
	$at, '... while replay stayed paused');
ok(!grep({ !$passed{$_} && !bg_alive($w[$_]) } 0 .. $#w),
	'the waiters for targets beyond the pause are still waiting');
is( $replica->safe_psql('postgres', 'SELECT count(*) FROM rr_waiters'),
	$n - scalar(@passed),
	'... and rr_waiters lists exactly them');

resume_replay($replica);
is(failed_waiters(\@w, \@tokens, time() + 120, grep { !$passed{$_} } 0 .. $#w),
	0, 'after the resume the others returned true and saw their rows');

$replica->stop;
$primary->stop;
done_testing();
