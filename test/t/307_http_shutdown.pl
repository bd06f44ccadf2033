
# Copyright (c) 2026, rr_router developers
#
# A server that shuts down refuses new connections at once, but a smart
# shutdown waits for the sessions still connected, and background workers
# -- ours, which serves HTTP -- run on meanwhile.  Health checks must then
# stop routing to it: /primary, /replica and /read-only answer 503 while
# /health still describes it.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../http";

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRHttp;
use RRTest;
use Test::More;

my $pport = PostgreSQL::Test::Cluster::get_free_port();
my $rport = PostgreSQL::Test::Cluster::get_free_port();
my $primary = rr_primary('primary', conf => "rr_router.http_port = $pport");
my $replica = rr_replica($primary, 'replica',
	conf => "rr_router.http_port = $rport");
poll_until($replica, 'SELECT rr_staleness() IS NOT NULL')
  or die 'the replica never learnt its staleness';

sub status_of
{
	my ($port, $path) = @_;
	my $r = http_request($port, 'GET', $path);
	return $r->{status} // 'none';
}

is(status_of($pport, '/primary'), 200, 'running primary: /primary 200');
is(status_of($rport, '/replica?max_staleness=1h'), 200,
	'running replica: /replica 200');

for my $case ([ $primary, $pport, '/primary' ],
	[ $replica, $rport, '/replica?max_staleness=1h' ])
{
	my ($node, $port, $path) = @$case;
	my $name = $node->name;

	# A session that keeps the smart shutdown waiting.
	my $s = bg_psql($node, 'SELECT pg_sleep(60);');
	poll_until($node,
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
	  or die 'the session did not start';

	system_or_bail('pg_ctl', '-D', $node->data_dir, '-m', 'smart', '-W', 'stop');

	my $ok = 0;
	for (1 .. 100)
	{
		if (status_of($port, $path) eq '503')
		{
			$ok = 1;
			last;
		}
		select(undef, undef, undef, 0.1);
	}
	ok($ok, "$name, smart shutdown waiting for a session: $path 503");
	is(status_of($port, '/read-only'), 503, "$name, shutting down: /read-only 503");
	is(status_of($port, '/health'), 200, "$name, shutting down: /health still answers");

	# Let the shutdown finish, then bring the node back for the next case.
	$s->{h}->kill_kill;
	bg_finish($s, 5);
	$node->stop('fast');
	$node->start;
}

done_testing();
