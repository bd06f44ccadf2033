
# Copyright (c) 2026, rr_router developers
#
# The HTTP endpoint must not leak the worker's memory, whatever clients do:
# here, clients that connect and send nothing until the worker times them
# out (408), round after round.  The worker's TopMemoryContext is read with
# pg_log_backend_memory_contexts(), which works on the worker since it is a
# backend without a database.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = rr_primary('primary', conf => "rr_router.http_port = $port");

# Bytes used by the worker's TopMemoryContext, from its memory-context dump
# in the server log.
sub worker_top_used
{
	my $pid = $node->safe_psql('postgres', 'SELECT worker_pid FROM rr_status');
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $used;
	for (1 .. 100)
	{
		my $log = slurp_file($node->logfile, $offset);
		if ($log =~ /\[$pid\].*?TopMemoryContext: .*? (\d+) used/)
		{
			$used = $1;
			last;
		}
		sleep 0.1;
	}
	die "no memory-context dump from the worker ($pid)" unless defined $used;
	return $used;
}

# One round: 32 clients connect and send nothing; the worker answers each
# 408 after 2 s and closes it.
sub idle_round
{
	my @socks;
	for (1 .. 32)
	{
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $port,
			Proto => 'tcp',
			Timeout => 5) or die "cannot connect: $!";
		push @socks, $s;
	}
	sleep 2.6;
	close $_ for @socks;
	return;
}

idle_round();    # warm up: buffers that are kept once allocated
my $before = worker_top_used();
idle_round() for 1 .. 4;
my $after = worker_top_used();
cmp_ok($after - $before, '<', 32 * 1024,
	"128 timed-out clients leave the worker's TopMemoryContext as it was "
	  . "($before -> $after bytes used)");

done_testing();
