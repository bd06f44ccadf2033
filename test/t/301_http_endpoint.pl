
# Copyright (c) 2026, rr_router contributors
#
# The HTTP endpoint (rr_router.http_port) in every state a load balancer or
# Prometheus meets: primary, fresh replica, kill switch off, replica with
# replay paused, replica cut off from its primary.  Every path with GET and
# HEAD, bounds in every unit, bad requests (400), unknown paths (404), other
# methods (405 with Allow), /metrics as Prometheus text that agrees with
# rr_status, rr_waiters and rr_lag_stats, checked by promtool and scraped by
# a real Prometheus with test/http/prometheus.yml.in when it is installed.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../http";

use File::Path qw(make_path);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRHttp;
use RRTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $http_dir = "$FindBin::RealBin/../http";

my $pport = PostgreSQL::Test::Cluster::get_free_port();
my $rport = PostgreSQL::Test::Cluster::get_free_port();

# Default heartbeat (1s), so the fresh-replica staleness is the sawtooth
# operators get; the replica's default bound is raised to 3s to sit well
# above it.
my $primary = rr_primary('primary', conf => "rr_router.http_port = $pport");
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica',
	conf => "rr_router.http_port = $rport\nrr_router.max_staleness = '3s'");

# Start a real Prometheus now with test/http/prometheus.yml.in rendered for
# both servers' endpoints (it takes several seconds to begin scraping new
# targets); checked further down.
my ($prom, $prom_dir, $prom_web, $prom_t0);
if (-x '/usr/bin/prometheus' && -x '/usr/bin/promtool')
{
	$prom_dir = "${PostgreSQL::Test::Utils::tmp_check}/prometheus";
	make_path("$prom_dir/data");
	$prom_web = PostgreSQL::Test::Cluster::get_free_port();
	system('cp', "$http_dir/rr_router.rules.yml",
		"$prom_dir/rr_router.rules.yml") == 0
	  or die 'could not copy the rules';
	render_template(
		"$http_dir/prometheus.yml.in",
		"$prom_dir/prometheus.yml",
		{
			SCRAPE_INTERVAL => '1s',
			RULES_FILE => "$prom_dir/rr_router.rules.yml",
			TARGETS => "'127.0.0.1:$pport', '127.0.0.1:$rport'"
		});
	my $log = "${PostgreSQL::Test::Utils::log_path}/prometheus.log";
	$prom_t0 = time();
	$prom = IPC::Run::start(
		[
			'/usr/bin/prometheus', "--config.file=$prom_dir/prometheus.yml",
			"--storage.tsdb.path=$prom_dir/data",
			"--web.listen-address=127.0.0.1:$prom_web"
		],
		'<', \undef, '>', $log, '2>&1');
}

# Never leave Prometheus behind, even when the test dies.
END
{
	if ($prom)
	{
		eval { $prom->kill_kill(grace => 2); 1 };
	}
}

# promtool check metrics on $text, when promtool is installed: it must
# parse (exit 1 is a parse error); with lint => 1 it must also pass
# promtool's lint (exit 3 lists lint problems).
sub promtool_check
{
	my ($text, $what, %opt) = @_;
  SKIP:
	{
		skip 'promtool is not installed (Debian package prometheus)',
		  $opt{lint} ? 2 : 1
		  unless -x '/usr/bin/promtool';
		my ($out, $err) = ('', '');
		IPC::Run::run([ '/usr/bin/promtool', 'check', 'metrics' ],
			'<', \$text, '>', \$out, '2>', \$err);
		my $rc = $? >> 8;
		ok($rc == 0 || $rc == 3, "$what: promtool parses /metrics")
		  or diag "exit $rc: $out$err";
		if ($opt{lint})
		{
			is($rc, 0, "$what: promtool check metrics finds no lint problem")
			  or diag "exit $rc: $out$err";
		}
	}
	return;
}

# The state line of an answer, for messages.
sub line_of { my ($r) = @_; my $b = $r->{body} // ''; chomp $b; return $b }

# GET and HEAD $target on $port: both $status, well-formed, the GET body a
# state line (returned parsed) unless $opt{metrics}, HEAD without body.
sub check_path
{
	my ($port, $target, $status, $what) = @_;
	my $g = http_request($port, 'GET', $target);
	is($g->{status} // 'none', $status, "$what: GET $target -> $status")
	  or diag "response: '$g->{raw}' ($g->{end})";
	ok(!$g->{error}, "$what: GET $target is well-formed HTTP")
	  or diag "$g->{error}: '$g->{raw}'";
	my $st = parse_state($g->{body});
	ok($st, "$what: GET $target body is one state line")
	  or diag "body: '" . ($g->{body} // '') . "'";
	is($g->{headers}{connection} // '', 'close', "$what: Connection: close");
	is($g->{end}, 'eof', "$what: the server closed the connection");

	my $h = http_request($port, 'HEAD', $target);
	is($h->{status} // 'none', $status, "$what: HEAD $target -> $status");
	ok(!$h->{error}, "$what: HEAD $target has Content-Length and no body")
	  or diag "$h->{error}: '$h->{raw}'";
	note "$what: GET $target -> " . ($g->{status} // 'none') . ': ' . line_of($g);
	return $st;
}

# The rr_status columns the metrics mirror, as numbers.
sub status_numbers
{
	my ($node) = @_;
	my @cols = (
		"(role = 'replica')::int", 'replica_reads::int',
		"coalesce(receive_lsn - '0/0', -1)", "coalesce(replay_lsn - '0/0', -1)",
		"primary_lsn - '0/0'", 'lag_bytes',
		'coalesce(extract(epoch FROM staleness), -1)', 'waits_immediate',
		'waits_woken', 'waits_timed_out',
		'waits_cancelled', 'extract(epoch FROM wait_time_total)',
		'extract(epoch FROM wait_time_max)', '(SELECT count(*) FROM rr_waiters)',
		'worker_pid');
	my @names = qw(is_replica replica_reads receive_lsn replay_lsn primary_lsn
	  lag_bytes staleness immediate woken timed_out cancelled wait_total
	  wait_max waiters worker_pid);
	my $row = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @cols) . ' FROM rr_status');
	my %h;
	@h{@names} = split /\|/, $row;
	return \%h;
}

# rr_lag_stats as { '1m' => { p50, p90, p99, max, lag_max, samples } }.
sub lag_stats
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM period)::int / 60 || 'm', samples, "
		  . 'extract(epoch FROM staleness_p50), extract(epoch FROM staleness_p90), '
		  . 'extract(epoch FROM staleness_p99), extract(epoch FROM staleness_max), '
		  . 'lag_bytes_max FROM rr_lag_stats');
	my %s;
	for (split /\n/, $out)
	{
		my ($p, @v) = split /\|/;
		@{ $s{$p} }{qw(samples p50 p90 p99 max lag_max)} = @v;
	}
	return \%s;
}

# GET /metrics: (samples, the response), with the format checked.
sub scrape
{
	my ($port, $what) = @_;
	my $r = http_request($port, 'GET', '/metrics');
	is($r->{status} // 'none', 200, "$what: /metrics answers 200");
	ok(!$r->{error}, "$what: /metrics is well-formed HTTP")
	  or diag $r->{error};
	like(
		$r->{headers}{'content-type'} // '',
		qr{^text/plain; version=0\.0\.4},
		"$what: /metrics has the Prometheus text content type");
	my ($m, $errors, $types) = parse_metrics($r->{body} // '');
	is_deeply($errors, [], "$what: every line of /metrics is valid exposition")
	  or diag $r->{body};
	return ($m, $r, $types);
}

# --- primary ------------------------------------------------------------

my $st = check_path($pport, '/health', 200, 'primary');
is($st->{role}, 'primary', 'primary: role=primary');
is($st->{staleness}, '0.000000', 'primary: staleness 0');
is($st->{lag_bytes}, 0, 'primary: lag_bytes 0');
is($st->{replica_reads}, 'on', 'primary: replica_reads on');
check_path($pport, '/primary', 200, 'primary');
check_path($pport, '/replica', 503, 'primary');
check_path($pport, '/replica?max_staleness=1h', 503, 'primary, loose bound');
check_path($pport, '/read-only', 200, 'primary');
check_path($pport, '/read-only?max_staleness=0&max_lag_bytes=0',
	200, 'primary, bound 0');

my ($m, $r, $types) = scrape($pport, 'primary');
promtool_check($r->{body}, 'primary');
is($m->{rr_router_up}, 1, 'primary: rr_router_up 1');
is($m->{rr_router_is_replica}, 0, 'primary: rr_router_is_replica 0');
is($m->{rr_router_staleness_seconds}, 0, 'primary: rr_router_staleness_seconds 0');
is($m->{rr_router_lag_bytes}, 0, 'primary: rr_router_lag_bytes 0');
ok(!exists $m->{rr_router_replay_lsn}, 'primary: no replay LSN');
my $plsn = $primary->safe_psql('postgres', "SELECT pg_current_wal_flush_lsn() - '0/0'");
cmp_ok($m->{rr_router_primary_lsn}, '<=', $plsn,
	'primary: rr_router_primary_lsn is not ahead of the flush LSN');
cmp_ok($m->{rr_router_primary_lsn}, '>', 0, '... and set');
is($types->{rr_router_waits_total}, 'counter', 'rr_router_waits_total is a counter');

# --- fresh replica -------------------------------------------------------

$primary->wait_for_catchup($replica);
# Staleness is known once replay has proven a primary time since the start:
# the next heartbeat (at most 1 s away) or commit.
poll_until($replica, 'SELECT rr_staleness() IS NOT NULL')
  or die 'the replica never learnt its staleness';
# Its lag is known once the walsender has told it where the primary is,
# which can come a moment later (it failed once on 19 without this).
poll_until($replica, 'SELECT lag_bytes IS NOT NULL FROM rr_status')
  or die 'the replica never learnt its lag';
$st = check_path($rport, '/health', 200, 'fresh replica');
is($st->{role}, 'replica', 'fresh replica: role=replica');
is($st->{replica_reads}, 'on', 'fresh replica: replica_reads on');
ok(defined $st->{staleness}, 'fresh replica: staleness known');
check_path($rport, '/primary', 503, 'fresh replica');
check_path($rport, '/replica', 200, 'fresh replica, default bound 3s');
check_path($rport, '/replica?max_staleness=5s', 200, 'fresh replica');
check_path($rport, '/replica?max_staleness=5s&max_lag_bytes=100000000',
	200, 'fresh replica, both bounds');
check_path($rport, '/read-only', 200, 'fresh replica');
check_path($rport, '/read-only?max_staleness=10000', 200,
	'fresh replica, bare number = ms');

# The staleness an idle primary's heartbeat (1s) leaves on a replica.
my ($smax, $smin) = (0, 1e9);
for (1 .. 30)
{
	my ($code, $s) = http_state($rport, '/health');
	if ($s && defined $s->{staleness})
	{
		$smax = $s->{staleness} if $s->{staleness} > $smax;
		$smin = $s->{staleness} if $s->{staleness} < $smin;
	}
	usleep(50_000);
}
note sprintf('fresh replica, idle primary, heartbeat 1s: staleness %.3f .. %.3f s',
	$smin, $smax);
cmp_ok($smax, '<', 2.5, 'fresh replica: staleness stays below the heartbeat + slack');

# curl, as operators and scripts call it
my $c = curl_http($rport, '/replica?max_staleness=5s');
is($c->{status}, 200, 'curl: fresh replica /replica?max_staleness=5s -> 200');
like($c->{body}, qr/^role=replica staleness=[0-9.]+s lag_bytes=[0-9]+ replica_reads=on\n$/,
	'curl: the body is the state line');
$c = curl_http($rport, '/primary');
is($c->{status}, 503, 'curl: fresh replica /primary -> 503');
$c = curl_http($pport, '/primary', '--fail');
is($c->{rc}, 0, 'curl --fail: primary /primary succeeds');
$c = curl_http($rport, '/primary', '--fail');
is($c->{rc}, 22, 'curl --fail: replica /primary fails (exit 22)');
$c = curl_http($rport, '/health', '-I');
is($c->{status}, 200, 'curl -I (HEAD): /health -> 200');
unlike($c->{body}, qr/role=/, 'curl -I: no body');
like($c->{headers}, qr/^Content-Length: [0-9]+\r$/mi, 'curl -I: Content-Length');
$c = curl_http($rport, '/health', '--http1.0');
is($c->{status}, 200, 'curl --http1.0: /health -> 200');
$c = curl_http($rport, '/metrics');
is($c->{status}, 200, 'curl: /metrics -> 200');
$c = curl_http($rport, '/health', '-X', 'POST');
is($c->{status}, 405, 'curl -X POST: 405');
like($c->{headers}, qr/^Allow: GET, HEAD\r$/m, '... with Allow: GET, HEAD');
$c = curl_http($rport, '/nope');
is($c->{status}, 404, 'curl: /nope -> 404');

# HTTP::Tiny, a library client
my $ht = HTTP::Tiny->new(timeout => 5);
my $res = $ht->get("http://127.0.0.1:$rport/read-only?max_staleness=5s");
is($res->{status}, 200, 'HTTP::Tiny: /read-only -> 200');

# --- 400 / 404 / 405 -----------------------------------------------------

for my $t (
	'/replica?max_staleness=abc', '/replica?max_staleness=-1s',
	'/replica?max_staleness=5x', '/replica?max_staleness=',
	'/replica?max_staleness=1%20s', '/replica?max_staleness=nan',
	'/replica?max_staleness=inf', '/replica?max_staleness=1e400',
	'/replica?max_staleness=9999999999999h', '/replica?max_staleness=5S',
	'/replica?max_staleness', '/replica?max_lag_bytes=-1',
	'/replica?max_lag_bytes=1.5', '/replica?max_lag_bytes=abc',
	'/replica?max_lag_bytes=99999999999999999999', '/replica?foo=1',
	'/read-only?max_staleness=1s&bogus=2')
{
	my $x = http_request($rport, 'GET', $t);
	is($x->{status} // 'none', 400, "GET $t -> 400");
	ok(!$x->{error}, "... well-formed") or diag $x->{error};
}
my %bad_request = (
	'no version' => "GET /health\r\n\r\n",
	'method only' => "GET\r\n\r\n",
	'empty request line' => "\r\n\r\n",
	'HTTP/2.0' => "GET /health HTTP/2.0\r\n\r\n",
	'not HTTP' => "GET /health FOO/1.1\r\n\r\n",
	'two spaces' => "GET  /health HTTP/1.1\r\n\r\n",
	'NUL byte' => "GET /health\0 HTTP/1.1\r\n\r\n",);
for my $k (sort keys %bad_request)
{
	my $x = http_raw($rport, $bad_request{$k});
	is($x->{status} // 'none', 400, "$k -> 400")
	  or diag "got '$x->{raw}'";
}
for my $t ('/', '/nope', '/healthz', '/health/', '/replica/x', '/metrics.txt',
	'/HEALTH', 'health', '*')
{
	my $x = http_request($rport, 'GET', $t);
	is($x->{status} // 'none', 404, "GET $t -> 404");
	ok(!$x->{error}, "... well-formed") or diag $x->{error};
	$x = http_request($rport, 'HEAD', $t);
	is($x->{status} // 'none', 404, "HEAD $t -> 404");
	ok(!$x->{error}, '... without body') or diag $x->{error};
}
for my $meth (qw(POST PUT DELETE OPTIONS PATCH TRACE CONNECT get Get))
{
	for my $t ('/health', '/replica?max_staleness=1s', '/nope')
	{
		my $x = http_request($rport, $meth, $t);
		is($x->{status} // 'none', 405, "$meth $t -> 405");
		is($x->{headers}{allow} // '', 'GET, HEAD', '... with Allow: GET, HEAD');
	}
}
# well-formed variants that must work
my %good = (
	'HTTP/1.0 without Host' => "GET /health HTTP/1.0\r\n\r\n",
	'bare LF line ends' => "GET /health HTTP/1.0\n\n",
	'many headers' => "GET /health HTTP/1.1\r\n"
	  . join('', map { "X-H$_: $_\r\n" } 1 .. 50) . "\r\n",
	'HTTP/1.1, Host, keep-alive' =>
	  "GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
	'half-closed after the request' => undef,);
for my $k (sort keys %good)
{
	my $x =
	  defined $good{$k}
	  ? http_raw($rport, $good{$k})
	  : http_raw($rport, "GET /health HTTP/1.0\r\n\r\n", shutdown => 1);
	is($x->{status} // 'none', 200, "$k -> 200") or diag "got '$x->{raw}'";
}

# --- /metrics on a fresh replica ----------------------------------------

($m, $r) = scrape($rport, 'fresh replica');
promtool_check($r->{body}, 'fresh replica', lint => 1);
for my $name (
	qw(rr_router_up rr_router_is_replica rr_router_replica_reads
	rr_router_staleness_seconds rr_router_lag_bytes rr_router_receive_lsn
	rr_router_replay_lsn rr_router_primary_lsn rr_router_waiters
	rr_router_wait_seconds_total rr_router_wait_seconds_max))
{
	ok(exists $m->{$name}, "fresh replica: /metrics has $name");
}
for my $o (qw(immediate woken timed_out cancelled))
{
	ok(exists $m->{"rr_router_waits_total{outcome=\"$o\"}"},
		"fresh replica: /metrics has rr_router_waits_total{outcome=\"$o\"}");
}
for my $p (qw(1m 5m 15m))
{
	for my $q (qw(0.5 0.9 0.99 1))
	{
		ok( exists $m->{
				"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"$q\"}"},
			"fresh replica: /metrics has the $p window quantile $q");
	}
	ok(exists $m->{"rr_router_lag_bytes_window_max{period=\"$p\"}"},
		"fresh replica: /metrics has the $p window lag max");
}
is($m->{rr_router_is_replica}, 1, 'fresh replica: rr_router_is_replica 1');
is($m->{rr_router_replica_reads}, 1, 'fresh replica: rr_router_replica_reads 1');
cmp_ok($m->{rr_router_staleness_seconds}, '<', 2.5,
	'fresh replica: rr_router_staleness_seconds small');

# --- a real Prometheus scraping both servers ----------------------------

SKIP:
{
	skip 'prometheus is not installed (Debian package prometheus)', 7
	  unless -x '/usr/bin/prometheus' && -x '/usr/bin/promtool';

	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'promtool', 'check', 'config', "$prom_dir/prometheus.yml" ],
		'>', \$out, '2>', \$err);
	is($? >> 8, 0, 'promtool check config accepts the rendered prometheus.yml')
	  or diag "$out$err";
	my ($web, $t0) = ($prom_web, $prom_t0);

	my $query = sub {
		my ($q) = @_;
		my $res = $ht->get("http://127.0.0.1:$web/api/v1/query?query="
			  . join('', map { sprintf('%%%02X', ord) } split //, $q));
		return [] unless $res->{success};
		my $j = eval { decode_json($res->{content}) } or return [];
		return $j->{data}{result} // [];
	};
	my $got;
	while (time() - $t0 < 40)
	{
		$got = $query->('up{job="rr_router"} == 1');
		last if @$got == 2;
		usleep(200_000);
	}
	is(scalar @$got, 2, 'Prometheus scrapes both servers (up == 1)');
	note sprintf('Prometheus saw both targets up %.1f s after its start',
		time() - $t0);
	my %role = map { $_->{metric}{instance} => $_->{value}[1] }
	  @{ $query->('rr_router_is_replica') };
	is($role{"127.0.0.1:$pport"}, '0', 'Prometheus: the primary has is_replica 0');
	is($role{"127.0.0.1:$rport"}, '1', 'Prometheus: the replica has is_replica 1');
	my $stale = $query->("rr_router_staleness_seconds{instance=\"127.0.0.1:$rport\"}");
	ok(@$stale == 1 && $stale->[0]{value}[1] < 2.5,
		'Prometheus: the replica\'s staleness is there and small');
	my $q50 = $query->('rr_router_staleness_window_seconds{quantile="0.5",period="1m"}');
	is(scalar @$q50, 2, 'Prometheus: window quantiles of both servers');
	my $rules = $ht->get("http://127.0.0.1:$web/api/v1/rules");
	like($rules->{content} // '', qr/RRRouterReplicaStale/,
		'Prometheus loaded test/http/rr_router.rules.yml');
	$prom->signal('TERM');
	$prom->finish;
	undef $prom;
}

# --- kill switch off ------------------------------------------------------

for my $node ($replica, $primary)
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET rr_router.replica_reads = off;\n"
		  . 'SELECT pg_reload_conf()');
}
my ($ok, $secs) = http_poll($rport, '/health',
	sub { $_[1] && $_[1]{replica_reads} eq 'off' }, 10);
ok($ok, 'kill switch off: the replica reports replica_reads=off');
note sprintf('kill switch seen by the endpoint %.3f s after the reload', $secs);
check_path($rport, '/replica', 503, 'kill switch off');
check_path($rport, '/replica?max_staleness=1h', 503, 'kill switch off, loose bound');
check_path($rport, '/read-only?max_staleness=1h', 503, 'kill switch off');
check_path($rport, '/primary', 503, 'kill switch off');
check_path($rport, '/health', 200, 'kill switch off');
($m) = scrape($rport, 'kill switch off');
is($m->{rr_router_replica_reads}, 0, 'kill switch off: rr_router_replica_reads 0');
is($replica->safe_psql('postgres', 'SELECT rr_is_fresh(\'1h\')'), 'f',
	'kill switch off: rr_is_fresh agrees');

($ok) = http_poll($pport, '/health',
	sub { $_[1] && $_[1]{replica_reads} eq 'off' }, 10);
ok($ok, 'kill switch off on the primary: replica_reads=off');
check_path($pport, '/primary', 200, 'primary, kill switch off');
check_path($pport, '/read-only', 200, 'primary, kill switch off');
check_path($pport, '/replica', 503, 'primary, kill switch off');

for my $node ($replica, $primary)
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM RESET rr_router.replica_reads;\n"
		  . 'SELECT pg_reload_conf()');
}
($ok) = http_poll($rport, '/replica', sub { $_[0] eq '200' }, 10);
ok($ok, 'kill switch on again: /replica -> 200');
($ok) = http_poll($pport, '/health',
	sub { $_[1] && $_[1]{replica_reads} eq 'on' }, 10);
ok($ok, 'kill switch on again on the primary');

# --- replay paused ---------------------------------------------------------

$replica->safe_psql('postgres', 'SELECT rr_wait_for_lsn(pg_last_wal_replay_lsn(), 0)');
pause_replay($replica);
my $token = write_token($primary, 't', 'while paused');
poll_until($replica, "SELECT pg_last_wal_receive_lsn() >= '$token'")
  or die 'the replica did not receive the write';
my $t_pause = time();

# staleness between 1.2 s and the default bound (3 s)
($ok, $secs, undef, $st) = http_poll($rport, '/health',
	sub { $_[1] && defined $_[1]{staleness} && $_[1]{staleness} > 1.2 }, 10);
ok($ok, 'paused: staleness grows past 1.2 s');
SKIP:
{
	my ($code, $s) = http_state($rport, '/replica?max_staleness=1s');
	skip 'staleness passed the 3s default before the checks', 5
	  unless $s && defined $s->{staleness} && $s->{staleness} < 2.5;
	note "paused, staleness $s->{staleness} s";
	is($code, 503, 'paused: /replica?max_staleness=1s -> 503');
	($code) = http_state($rport, '/replica?max_staleness=500ms');
	is($code, 503, 'paused: /replica?max_staleness=500ms -> 503');
	($code) = http_state($rport, '/read-only?max_staleness=1000');
	is($code, 503, 'paused: /read-only?max_staleness=1000 (ms) -> 503');
	($code) = http_state($rport, '/replica');
	is($code, 200, 'paused: /replica with the default bound (3 s) -> 200');
	($code) = http_state($rport, '/read-only');
	is($code, 200, 'paused: /read-only with the default bound -> 200');
}

# a waiter in rr_waiters while replay is paused
my $waiter = bg_psql($replica, "SELECT rr_wait_for_lsn('$token', 60000);",
	app => 'http_waiter');
ok(wait_waiters($replica, 1), 'paused: a waiter waits');

# past the default bound
($ok, $secs, undef, $st) = http_poll($rport, '/health',
	sub { $_[1] && defined $_[1]{staleness} && $_[1]{staleness} > 3.3 }, 15);
ok($ok, 'paused: staleness grows past the 3 s default bound');
note sprintf('paused: staleness %.3f s, %.1f s after the pause', $st->{staleness},
	time() - $t_pause);
cmp_ok($st->{lag_bytes}, '>', 0, 'paused: lag_bytes > 0 after the write');
check_path($rport, '/replica', 503, 'paused, default bound');
check_path($rport, '/read-only', 503, 'paused, default bound');
check_path($rport, '/primary', 503, 'paused');
check_path($rport, '/health', 200, 'paused');
check_path($rport, '/replica?max_staleness=1h', 200, 'paused, loose bound');
check_path($rport, '/read-only?max_staleness=1h', 200, 'paused, loose bound');
check_path($rport, '/replica?max_staleness=1h&max_lag_bytes=0', 503,
	'paused, lag bound 0');
check_path($rport, '/replica?max_staleness=1h&max_lag_bytes=1000000000', 200,
	'paused, loose lag bound');
check_path($rport, '/replica?max_lag_bytes=1000000000', 503,
	'paused, loose lag bound but the default staleness bound');
# every unit; the staleness is now about 3.5 s
my %units = (
	'100000000us' => 200, '1000us' => 503, '0us' => 503,
	'60000' => 200, '100' => 503, '0' => 503,
	'60000ms' => 200, '1500ms' => 503, '2.5ms' => 503,
	'60s' => 200, '1.5s' => 503, '0.5s' => 503,
	'1min' => 200, '0.01min' => 503, '2.5min' => 200,
	'1h' => 200, '0.0001h' => 503, '1e3s' => 200);
for my $u (sort keys %units)
{
	my ($code) = http_state($rport, "/replica?max_staleness=$u");
	is($code, $units{$u}, "paused: /replica?max_staleness=$u -> $units{$u}");
}
# the default bound follows rr_router.max_staleness on reload
$replica->safe_psql('postgres',
	"ALTER SYSTEM SET rr_router.max_staleness = '1h';\n" . 'SELECT pg_reload_conf()');
($ok, $secs) = http_poll($rport, '/replica', sub { $_[0] eq '200' }, 10);
ok($ok, 'paused: rr_router.max_staleness = 1h on reload -> /replica 200');
note sprintf('the new default bound was in force %.3f s after the reload', $secs);
$replica->safe_psql('postgres',
	"ALTER SYSTEM RESET rr_router.max_staleness;\n" . 'SELECT pg_reload_conf()');
($ok) = http_poll($rport, '/replica', sub { $_[0] eq '503' }, 10);
ok($ok, 'paused: rr_router.max_staleness back to 3s -> /replica 503');

my ($code) = http_state($rport,
	'/replica?max_lag_bytes=1000000000&max_staleness=1h');
is($code, 200, 'parameters in either order');
($code) = http_state($rport, '/replica?max_staleness=1s&max_staleness=1h');
is($code, 200, 'a repeated parameter: the last one counts');

# /metrics agrees with rr_status, rr_waiters and rr_lag_stats
my $before = status_numbers($replica);
my $stats0 = lag_stats($replica);
($m, $r) = scrape($rport, 'paused');
my $after = status_numbers($replica);
my $stats1 = lag_stats($replica);
promtool_check($r->{body}, 'paused');

sub bracket
{
	my ($metric, $col, $slack, $what) = @_;
	my $v = $m->{$metric};
	ok( defined $v
		  && $v >= $before->{$col} - $slack
		  && $v <= $after->{$col} + $slack,
		"paused: $metric agrees with rr_status.$col ($what)")
	  or diag "metric "
	  . ($v // 'missing')
	  . ", rr_status before $before->{$col} after $after->{$col}";
	return;
}
bracket('rr_router_replay_lsn', 'replay_lsn', 0, 'exact');
is($before->{replay_lsn}, $after->{replay_lsn}, '... replay stood still');
bracket('rr_router_receive_lsn', 'receive_lsn', 0, 'between two reads');
bracket('rr_router_primary_lsn', 'primary_lsn', 0, 'between two reads');
bracket('rr_router_lag_bytes', 'lag_bytes', 0, 'between two reads');
bracket('rr_router_staleness_seconds', 'staleness', 0.001, 'between two reads');
bracket('rr_router_is_replica', 'is_replica', 0, 'exact');
bracket('rr_router_replica_reads', 'replica_reads', 0, 'exact');
bracket('rr_router_waiters', 'waiters', 0, 'exact');
is($m->{rr_router_waiters}, 1, 'paused: rr_router_waiters counts the waiter');
bracket("rr_router_waits_total{outcome=\"$_->[0]\"}", $_->[1], 0, 'exact')
  for ([ 'immediate', 'immediate' ], [ 'woken', 'woken' ],
	[ 'timed_out', 'timed_out' ], [ 'cancelled', 'cancelled' ]);
cmp_ok($m->{'rr_router_waits_total{outcome="immediate"}'}, '>=', 1,
	'paused: the immediate wait before the pause is counted');
bracket('rr_router_wait_seconds_total', 'wait_total', 0.000001, 'exact');
bracket('rr_router_wait_seconds_max', 'wait_max', 0.000001, 'exact');
for my $p (qw(1m 5m 15m))
{
	my %q = (p50 => '0.5', p90 => '0.9', p99 => '0.99', max => '1');
	for my $k (sort keys %q)
	{
		my $v = $m->{
			"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"$q{$k}\"}"};
		# /metrics rounds a quantile up to the top of its histogram bucket,
		# at most 1/1024 above the exact value (README)
		ok( defined $v
			  && $v >= $stats0->{$p}{$k} - 0.001
			  && $v <= $stats1->{$p}{$k} * (1 + 1 / 1024) + 0.001,
			"paused: the $p quantile $q{$k} agrees with rr_lag_stats.staleness_$k")
		  or diag "metric "
		  . ($v // 'missing')
		  . ", rr_lag_stats before $stats0->{$p}{$k} after $stats1->{$p}{$k}";
	}
	my $v = $m->{"rr_router_lag_bytes_window_max{period=\"$p\"}"};
	ok( defined $v
		  && $v >= $stats0->{$p}{lag_max}
		  && $v <= $stats1->{$p}{lag_max},
		"paused: the $p lag max agrees with rr_lag_stats.lag_bytes_max")
	  or diag "metric "
	  . ($v // 'missing')
	  . ", rr_lag_stats before $stats0->{$p}{lag_max} after $stats1->{$p}{lag_max}";
	ok( $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"0.5\"}"}
		  <= $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"0.9\"}"}
		  && $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"0.9\"}"}
		  <= $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"0.99\"}"}
		  && $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"0.99\"}"}
		  <= $m->{"rr_router_staleness_window_seconds{period=\"$p\",quantile=\"1\"}"},
		"paused: the $p quantiles are ordered");
}
cmp_ok($m->{'rr_router_staleness_window_seconds{period="1m",quantile="1"}'},
	'>', 3, 'paused: the 1m window max saw the paused staleness');

# resume: the waiter is woken, the endpoint says fresh again
my $woken0 = $after->{woken};
my $t_resume = time();
resume_replay($replica);
my $wres = bg_finish($waiter, 30);
is($wres->{out}, 't', 'resumed: the waiter returned true');
($ok, $secs) = http_poll($rport, '/replica?max_staleness=2s',
	sub { $_[0] eq '200' }, 10);
ok($ok, 'resumed: /replica?max_staleness=2s -> 200 again');
note sprintf('resumed: /replica answered 200 %.3f s after the resume',
	time() - $t_resume);
($m) = scrape($rport, 'resumed');
is($m->{'rr_router_waits_total{outcome="woken"}'}, $woken0 + 1,
	'resumed: rr_router_waits_total{outcome="woken"} counted the waiter');
is($m->{rr_router_waiters}, 0, 'resumed: rr_router_waiters 0');

# --- disconnected: the primary is gone --------------------------------------

my $worker_pid = $before->{worker_pid};
$primary->stop('fast');
my $t_stop = time();
my $x = http_raw($pport, "GET /health HTTP/1.0\r\n\r\n");
is($x->{end}, 'refused', 'the stopped primary\'s endpoint is gone');
($ok, $secs, undef, $st) =
  http_poll($rport, '/replica?max_staleness=1s', sub { $_[0] eq '503' }, 15);
ok($ok, 'disconnected: /replica?max_staleness=1s -> 503 once staleness passes 1 s');
note sprintf('disconnected: 503 for a 1 s bound %.3f s after the primary stopped',
	time() - $t_stop);
($ok, $secs, undef, $st) = http_poll($rport, '/health',
	sub { $_[1] && defined $_[1]{staleness} && $_[1]{staleness} > 3.3 }, 15);
ok($ok, 'disconnected: staleness keeps growing past the default bound');
# (a walreceiver that is being restarted shows 'streaming' for a moment
# before its connection attempt fails: poll)
ok( poll_until($replica,
		"SELECT receiver_state IS DISTINCT FROM 'streaming' FROM rr_status", 't', 10),
	'disconnected: rr_status.receiver_state is not streaming');
check_path($rport, '/health', 200, 'disconnected');
check_path($rport, '/replica', 503, 'disconnected, default bound');
check_path($rport, '/read-only', 503, 'disconnected, default bound');
check_path($rport, '/read-only?max_staleness=2s', 503, 'disconnected');
check_path($rport, '/primary', 503, 'disconnected');
check_path($rport, '/replica?max_staleness=1h', 200, 'disconnected, loose bound');
($m) = scrape($rport, 'disconnected');
cmp_ok($m->{rr_router_staleness_seconds}, '>', 3.3,
	'disconnected: rr_router_staleness_seconds grows');
my $sql_stale = $replica->safe_psql('postgres',
	'SELECT extract(epoch FROM rr_staleness())');
cmp_ok(abs($sql_stale - $m->{rr_router_staleness_seconds}), '<', 1,
	'disconnected: the metric agrees with rr_staleness()');
is($replica->safe_psql('postgres', 'SELECT worker_pid FROM rr_status'),
	$worker_pid, 'the worker never restarted');

done_testing();
