
# Copyright (c) 2025, rr_router contributors
#
# The reference Python router (test/clients/python/rr_router_client.py) end
# to end: a primary, a replica 300 ms behind (recovery_min_apply_delay) and
# a replica the Python tests pause and resume, plus a port where nothing
# listens.  test/clients/python/test_rr_router_client.py does the work: the
# classic stale reads under naive routing and never through the router,
# bounded reads against ground truth, the kill switch, an unreachable
# replica, and the share of reads served by replicas beside a 2-second
# sticky-primary policy.  Each of its tests becomes one TAP test here.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRTest;
use Test::More;
use Time::HiRes qw(time);

# Debian's python3-psycopg and python3-psycopg-pool are installed for
# /usr/bin/python3; another python3 earlier on PATH may lack them.
my ($python) = grep { -x $_ } ('/usr/bin/python3', 'python3');
my ($pyout, $pyerr) = ('', '');
IPC::Run::run([ $python, '-c', 'import psycopg, psycopg_pool' ],
	'>' => \$pyout, '2>' => \$pyerr)
  or BAIL_OUT("this test needs python3 with psycopg 3 and psycopg_pool "
	  . "(apt-get install python3-psycopg python3-psycopg-pool): $pyerr");

my $dir = "$FindBin::RealBin/../clients/python";
my $script = "$dir/test_rr_router_client.py";
-f $script or BAIL_OUT("missing $script");

my $primary = rr_primary('primary');
my $delayed = rr_replica($primary, 'delayed',
	conf => "recovery_min_apply_delay = '300ms'");
my $pausable = rr_replica($primary, 'pausable');

# A port reserved for this test where no server will ever listen.
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
my $dead = sprintf("host=%s port=%d dbname=postgres connect_timeout=2",
	$primary->host, $dead_port);

my ($out, $err) = ('', '');
my $t0 = time();
my $ran = eval {
	local $ENV{RR_PRIMARY} = $primary->connstr('postgres');
	local $ENV{RR_REPLICA_DELAYED} = $delayed->connstr('postgres');
	local $ENV{RR_REPLICA_PAUSABLE} = $pausable->connstr('postgres');
	local $ENV{RR_DEAD} = $dead;
	local $ENV{PYTHONDONTWRITEBYTECODE} = 1;
	IPC::Run::run(
		[ $python, '-u', $script ],
		'>' => \$out,
		'2>' => \$err,
		IPC::Run::timeout(600));
};
my $exc = $@;
my $rc = $? >> 8;
note sprintf("python tests ran for %.1f s", time() - $t0);
note "stdout:\n$out";
note "stderr:\n$err";

# One TAP test per Python test, then the exit code.
my ($plan) = $out =~ /^RR_PLAN (\d+)$/m;
my @results = $out =~ /^RR_RESULT (\S+) (\S+)$/mg;
while (my ($status, $name) = splice(@results, 0, 2))
{
	is($status, 'ok', "python: $name");
}
ok(defined $plan && $plan > 0, 'the python tests started')
  or diag "stderr:\n$err";
is(scalar(() = $out =~ /^RR_RESULT /mg), $plan // -1,
	'every python test reported a result');
ok($ran && !$exc, 'the python tests exited 0')
  or diag "exit code $rc" . ($exc ? ", $exc" : '') . "\nstderr:\n$err";

# The share of reads served by replicas, router beside sticky and naive.
diag $_ for $out =~ /^RR_SHARE (.*)$/mg;

done_testing();
