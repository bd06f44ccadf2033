
# Copyright (c) 2026, rr_router contributors
#
# The HTTP endpoint under hostile and broken clients: random bytes, grammar
# fuzz, oversized request heads (431, with the 4096-byte boundary exact),
# slow-loris and half-open connections (408 after 2 s), more than 32
# concurrent connections (the rest closed at once), resets.  First each
# case alone, answered exactly; then all of them at once against a replica
# while 50 write -> rr_wait_for_lsn cycles run on it: every wait must
# succeed within 1 s, the worker must keep sampling (rr_status.last_sample_at,
# no gap in rr_lag_history), must never restart (same worker_pid), and the
# endpoint must answer /health afterwards.

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../http";

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RRHttp;
use RRTest;
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(time usleep);

# The primary's endpoint cannot listen anywhere: its port is taken and
# 192.0.2.1 (TEST-NET-1) is no local address.  It must run without one.
my $busy_port = PostgreSQL::Test::Cluster::get_free_port();
my $busy = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => $busy_port,
	Listen => 1,
	ReuseAddr => 1) or die "could not listen on $busy_port: $!";
my $hport = PostgreSQL::Test::Cluster::get_free_port();
my $primary = rr_primary('primary',
	conf => "rr_router.http_port = $busy_port\n"
	  . "rr_router.http_listen_addresses = '192.0.2.1, 127.0.0.1'");
$primary->safe_psql('postgres', 'CREATE TABLE t(id serial, v text)');
my $replica = rr_replica($primary, 'replica',
	conf => "rr_router.http_port = $hport");

my $seed = $ENV{RR_HTTP_SEED} // (time() * 1000 % 1000000);
note "random seed $seed (set RR_HTTP_SEED to repeat)";
srand($seed);

my $plog = slurp_file($primary->logfile);
like($plog, qr/could not listen on "192\.0\.2\.1" port $busy_port for the rr_router HTTP endpoint/,
	'primary: an address that is not local is logged');
like($plog, qr/could not listen on "127\.0\.0\.1" port $busy_port for the rr_router HTTP endpoint: Address already in use/,
	'primary: a port in use is logged');
like($plog, qr/rr_router HTTP endpoint is not listening on any address/,
	'primary: no endpoint at all is logged');
ok( poll_until($primary,
		"SELECT worker_pid > 0 AND clock_timestamp() - last_sample_at < '1s' FROM rr_status"),
	'primary: the worker runs and samples without an endpoint');

my $worker_pid =
  $replica->safe_psql('postgres', 'SELECT worker_pid FROM rr_status');
ok($worker_pid > 0, "the worker runs (pid $worker_pid)");
my ($ok) = http_poll($hport, '/health', sub { $_[0] eq '200' }, 10);
ok($ok, 'the endpoint answers /health');

# An open connection, or die.
sub conn
{
	my $s = http_connect($hport) or die "could not connect: $!";
	binmode $s;
	return $s;
}

# Wait until $sock is closed by the server: (bytes read, seconds waited,
# how it ended: 'eof' | 'reset' | 'timeout').
sub wait_closed
{
	my ($sock, $timeout_s) = @_;
	my $t0 = time();
	my $sel = IO::Select->new($sock);
	my $buf = '';
	while (time() - $t0 < $timeout_s)
	{
		next unless $sel->can_read(0.05);
		my $n = sysread($sock, $buf, 65536, length $buf);
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			return ($buf, time() - $t0, 'reset');
		}
		return ($buf, time() - $t0, 'eof') if $n == 0;
	}
	return ($buf, time() - $t0, 'timeout');
}

# Status of a raw response, or 'none'.
sub status_of_raw
{
	my ($raw) = @_;
	return $raw =~ m{\AHTTP/1\.[01] ([0-9]{3}) } ? $1 : 'none';
}

# Close with a reset instead of a FIN.
sub reset_close
{
	my ($sock) = @_;
	setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
	close $sock;
	return;
}

sub rand_bytes
{
	my ($n) = @_;
	return join '', map { chr(int(rand(256))) } 1 .. $n;
}

# ===== each case alone =========================================================

# --- oversized heads: 431, at once, at exactly 4096 bytes -----------------------

my $r = http_raw($hport,
	"GET /health HTTP/1.1\r\nX-Big: " . ('a' x 5000) . "\r\n\r\n");
is($r->{status} // 'none', 431, 'a 5 kB header -> 431');
ok(!$r->{error}, '... well-formed') or diag $r->{error};
cmp_ok($r->{secs}, '<', 1, '... at once');

# a head of exactly 4096 bytes (terminator included) is served, 4097 is not
my $base = "GET /health HTTP/1.1\r\nX-Pad: ";
my $pad = 4096 - length($base) - 4;
$r = http_raw($hport, $base . ('p' x $pad) . "\r\n\r\n");
is($r->{status} // 'none', 200, 'a request head of exactly 4096 bytes -> 200');
$r = http_raw($hport, $base . ('p' x ($pad + 1)) . "\r\n\r\n");
is($r->{status} // 'none', 431, 'a request head of 4097 bytes -> 431');

# 4096 bytes and no end of head yet: 431 at once, not a 408 later
$r = http_raw($hport, 'G' x 4096);
is($r->{status} // 'none', 431, '4096 bytes without an end of head -> 431');
cmp_ok($r->{secs}, '<', 1, '... at once');

# many small headers adding up to more than 4 kB
$r = http_raw($hport,
	"GET /health HTTP/1.1\r\n" . join('', map { "X-$_: " . ('v' x 40) . "\r\n" } 1 .. 100) . "\r\n");
is($r->{status} // 'none', 431, '100 headers adding up to 5 kB -> 431');

# 64 kB of garbage in one go
$r = http_raw($hport, rand_bytes(65536) =~ tr/\0\n//dr);
like($r->{status} // $r->{end}, qr/^(?:431|eof|reset)$/,
	'64 kB of garbage -> 431 (or the connection reset while we still sent)');

# --- split, pipelined, reset ------------------------------------------------------

{
	my $s = conn();
	my $req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
	for my $ch (split //, $req)
	{
		syswrite($s, $ch);
		usleep(2_000);
	}
	my ($buf, $secs, $end) = wait_closed($s, 5);
	is(status_of_raw($buf), 200, 'a request sent byte by byte (fast) -> 200');
	close $s;
}
{
	my $s = conn();
	syswrite($s, "GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
	my ($buf, $secs, $end) = wait_closed($s, 5);
	my @st = $buf =~ m{HTTP/1\.[01] ([0-9]{3}) }g;
	is("@st", '200', 'two pipelined requests: the first is answered, then close');
	close $s;
}
for my $i (1 .. 20)
{
	my $s = conn();
	syswrite($s, $i % 2 ? "GET /metrics HTTP/1.1\r\n\r\n" : "GET /hea");
	reset_close($s);
}
$r = http_raw($hport, "GET /health HTTP/1.0\r\n\r\n");
is($r->{status} // 'none', 200, 'after 20 clients that reset: /health -> 200');

# --- slow-loris, half-open, FIN without request: 408 after 2 s, or closed ----------

{
	my $t0 = time();
	my $slow = conn();
	my $idle = conn();
	my $fin = conn();
	shutdown($fin, 1);
	my @req = split //, "GET /health HTTP/1.1\r\nHost: slow\r\n\r\n";
	my %done;
	my $sel = IO::Select->new($slow, $idle, $fin);
	my %buf = map { ($_ => '') } ($slow, $idle, $fin);
	my $next_byte = $t0;
	my $sent = 0;
	while (keys %done < 3 && time() - $t0 < 6)
	{
		if (!$done{$slow} && time() >= $next_byte && @req)
		{
			syswrite($slow, shift @req);
			$sent++;
			$next_byte += 0.5;
		}
		for my $s ($sel->can_read(0.05))
		{
			my $n = sysread($s, $buf{$s}, 65536, length $buf{$s});
			next if !defined $n && ($! == EINTR || $! == EAGAIN);
			if (!$n)
			{
				$done{$s} = time() - $t0;
				$sel->remove($s);
			}
		}
	}
	note sprintf('slow-loris (1 byte per 500 ms, %d bytes sent): closed after %.2f s: %s',
		$sent, $done{$slow} // -1, status_of_raw($buf{$slow}));
	note sprintf('half-open (never sends): closed after %.2f s: %s',
		$done{$idle} // -1, status_of_raw($buf{$idle}));
	note sprintf('FIN without a request: closed after %.2f s', $done{$fin} // -1);
	is(status_of_raw($buf{$slow}), 408, 'slow-loris -> 408');
	ok(defined $done{$slow} && $done{$slow} > 1.5 && $done{$slow} < 3.5,
		'... after about 2 s');
	is(status_of_raw($buf{$idle}), 408, 'half-open connection -> 408');
	ok(defined $done{$idle} && $done{$idle} > 1.5 && $done{$idle} < 3.5,
		'... after about 2 s');
	ok(defined $done{$fin} && $done{$fin} < 1, 'a client that closes without a request is dropped at once');
	is($buf{$fin}, '', '... without an answer');
	close $_ for ($slow, $idle, $fin);
}

# --- more than 32 at once: the client idle longest makes room ----------------------

{
	my $t0 = time();
	my @socks = map { conn() } 1 .. 40;
	# beyond 32, each newcomer displaces the client that has waited longest,
	# which gets 408 at once (well before the 2 s timeout of the others):
	# collect them for up to 1.2 s, or until 8 are
	my $sel = IO::Select->new(@socks);
	my %closed;
	my $early408 = 0;
	while (keys %closed < 8 && time() - $t0 < 1.2)
	{
		for my $s ($sel->can_read(0.05))
		{
			my $buf = '';
			my $n = sysread($s, $buf, 200);
			next if !defined $n && ($! == EINTR || $! == EAGAIN);
			$closed{$s} = $s;
			$sel->remove($s);
			$early408++ if status_of_raw($buf) eq '408';
		}
	}
	my @open = grep { !$closed{$_} } @socks;
	note sprintf('40 idle connections: %d kept, %d displaced at once', scalar @open,
		scalar keys %closed);
	is(scalar @open, 32, '32 idle connections are kept');
	is(scalar keys %closed, 8, 'beyond 32, each newcomer displaces an idle client');
	is($early408, 8, '... which gets 408 at once');
	my $x = http_raw($hport, "GET /health HTTP/1.0\r\n\r\n", timeout => 2);
	is(status_of_raw($x->{raw}), '200',
		'while 32 idle clients are held, a health check is still answered');
	my ($n408, $tmax) = (0, 0);
	for my $s (@open)
	{
		my ($buf, $secs) = wait_closed($s, 5);
		$n408++ if status_of_raw($buf) eq '408';
		$tmax = time() - $t0;
	}
	note sprintf('the 32 held connections all closed %.2f s after they opened', $tmax);
	is($n408, 32, 'every held connection ends with 408 (one displaced by the health check)');
	cmp_ok($tmax, '<', 3.5, '... about 2 s after they opened');
	close $_ for @socks;
	($ok) = http_poll($hport, '/health', sub { $_[0] eq '200' }, 5);
	ok($ok, 'then /health is served again');
}

# --- grammar fuzz and random bytes, one at a time ------------------------------------

my @methods = qw(GET HEAD POST get PUT X);
my @paths = ('/health', '/primary', '/replica', '/read-only', '/metrics', '/', '/x',
	'/replica/', '//replica', '/read-only%20');
my @params = ('max_staleness', 'max_lag_bytes', 'foo', '', 'max_staleness=1s');
my @chars = split //, "0123456789.-+eEsmuinhx%&=? ";

# A random request line + head that is a near miss of a valid one.
sub fuzz_request
{
	my $target = $paths[ rand @paths ];
	if (rand() < 0.8)
	{
		my @q;
		for (1 .. int(rand(3)) + 1)
		{
			my $v = join '', map { $chars[ rand @chars ] } 1 .. int(rand(8));
			push @q, $params[ rand @params ] . (rand() < 0.9 ? '=' : '') . $v;
		}
		$target .= '?' . join(rand() < 0.9 ? '&' : '&&', @q);
	}
	my $version = ('HTTP/1.1', 'HTTP/1.0', 'HTTP/1.1', 'HTTP/2', 'HTTP/1.1x', '')[ rand 6 ];
	my $eol = rand() < 0.8 ? "\r\n" : "\n";
	return "$methods[rand @methods] $target $version$eol"
	  . (rand() < 0.5 ? "Host: x$eol" : '') . $eol;
}

my %allowed = map { $_ => 1 } qw(200 400 404 405 503);
my (%fuzz_seen, @fuzz_bad);
for (1 .. 300)
{
	my $req = fuzz_request();
	my $x = http_raw($hport, $req, timeout => 3);
	my $st = $x->{status} // 'none';
	$fuzz_seen{$st}++;
	# a HEAD answer has no body, once the request line parsed as
	# HEAD TARGET HTTP/1.x (an unparsable one gets a 400 with its body)
	my $head_req = $req =~ m{^HEAD \S+ HTTP/1\.};
	my $p = parse_response($x->{raw}, head => $head_req);
	push @fuzz_bad, "status $st ($x->{end}) for " . ($req =~ s/\r?\n.*//sr)
	  unless $allowed{$st} && !$p->{error};
}
note 'grammar fuzz, 300 requests: '
  . join(', ', map { "$_ x$fuzz_seen{$_}" } sort keys %fuzz_seen);
is_deeply(\@fuzz_bad, [],
	'grammar fuzz: every request gets a well-formed 200/400/404/405/503');

my (%rand_seen, @rand_bad);
for my $i (1 .. 200)
{
	my $len = int(rand(3000));
	my $bytes = rand_bytes($len) . "\r\n\r\n";
	my $x = http_raw($hport, $bytes, timeout => 3);
	my $st = $x->{status} // 'none';
	$rand_seen{$st}++;
	push @rand_bad, "status $st ($x->{end}) for $len random bytes"
	  unless $st =~ /^(?:400|404|405)$/ && !$x->{error};
}
note 'random bytes + end of head, 200 requests: '
  . join(', ', map { "$_ x$rand_seen{$_}" } sort keys %rand_seen);
is_deeply(\@rand_bad, [], 'random bytes: every request gets a well-formed 400/404/405');

# ===== everything at once, while waits are woken ==================================

# Children attack the endpoint until $stop_at; each writes one result line
# per connection to its file.  They leave with POSIX::_exit so that no END
# block of the test framework runs in them.
my $dir = "${PostgreSQL::Test::Utils::tmp_check}/303_attack";
mkdir $dir;
my $attack_secs = 9;
my $attack_start = time();
my $stop_at = $attack_start + $attack_secs;
my @kids;

sub spawn
{
	my ($name, $body) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		local $SIG{PIPE} = 'IGNORE';
		open my $out, '>', "$dir/$name.txt" or POSIX::_exit(2);
		my $rc = eval { $body->($out); 1 } ? 0 : 3;
		print $out "ERROR $@" if $rc;
		close $out;
		POSIX::_exit($rc);
	}
	push @kids, [ $pid, $name ];
	return;
}

# random bytes, grammar fuzz, oversized heads, resets, FIN, valid requests
for my $k (1 .. 2)
{
	spawn(
		"random$k",
		sub {
			my ($out) = @_;
			srand($seed + $k);
			while (time() < $stop_at)
			{
				my $kind = int(rand(7));
				my $t0 = time();
				if ($kind == 0)
				{
					my $x = http_raw($hport, rand_bytes(int(rand(2000))) . "\r\n\r\n");
					print $out "rand $x->{end} " . ($x->{status} // 'none') . "\n";
				}
				elsif ($kind == 1)
				{
					my $x = http_raw($hport, fuzz_request());
					print $out "fuzz $x->{end} " . ($x->{status} // 'none') . "\n";
				}
				elsif ($kind == 2)
				{
					my $x = http_raw($hport, rand_bytes(4096 + int(rand(5000))));
					print $out "big $x->{end} " . ($x->{status} // 'none') . "\n";
				}
				elsif ($kind == 3)
				{
					my $s = http_connect($hport) or next;
					syswrite($s, rand_bytes(int(rand(500))));
					reset_close($s);
					print $out "reset\n";
				}
				elsif ($kind == 4)
				{
					my $x = http_raw($hport, rand_bytes(int(rand(500))) =~ tr/\0//dr,
						shutdown => 1);
					print $out "fin $x->{end} " . ($x->{status} // 'none') . "\n";
				}
				else
				{
					my $x = http_raw($hport, "GET /health HTTP/1.0\r\n\r\n");
					printf $out "health %s %s %.3f\n", $x->{end},
					  $x->{status} // 'none', $x->{secs};
				}
			}
		});
}

# slow-loris and half-open connections, reopened as soon as they are closed,
# and a burst of 40 idle connections every 3 s
spawn(
	'hold',
	sub {
		my ($out) = @_;
		my $sel = IO::Select->new;
		my %c;    # sock => { kind, opened, buf, next, sent }
		my @reopen;    # [ kind, when ]: refused or closed, open again
		my $open = sub {
			my ($kind) = @_;
			my $s = http_connect($hport) or return;
			binmode $s;
			$c{$s} = { s => $s, kind => $kind, opened => time(), buf => '',
				next => time(), sent => 0 };
			$sel->add($s);
		};
		$open->('slow') for 1 .. 4;
		$open->('idle') for 1 .. 4;
		my $next_burst = time();
		while (time() < $stop_at)
		{
			if (time() >= $next_burst)
			{
				$open->('burst') for 1 .. 40;
				$next_burst += 3;
			}
			for my $x (values %c)
			{
				next unless $x->{kind} eq 'slow' && time() >= $x->{next};
				syswrite($x->{s}, substr("GET /health HTTP/1.1\r\nHost: slow\r\n\r\n",
						$x->{sent}++ % 36, 1));
				$x->{next} += 0.5;
			}
			for my $s ($sel->can_read(0.05))
			{
				my $x = $c{$s};
				my $n = sysread($s, $x->{buf}, 65536, length $x->{buf});
				next if !defined $n && ($! == EINTR || $! == EAGAIN);
				next if $n;
				printf $out "%s %.3f %s\n", $x->{kind}, time() - $x->{opened},
				  status_of_raw($x->{buf});
				$sel->remove($s);
				delete $c{$s};
				close $s;
				push @reopen, [ $x->{kind}, time() + 0.1 ]
				  if $x->{kind} ne 'burst';
			}
			my @due = grep { $_->[1] <= time() } @reopen;
			@reopen = grep { $_->[1] > time() } @reopen;
			$open->( $_->[0] ) for @due;
		}
		# still open at the stop: how long they have been open
		printf $out "%s-open %.3f none\n", $_->{kind}, time() - $_->{opened}
		  for values %c;
	});

# Meanwhile: write -> wait cycles on the replica, and the worker's pulse.
my $ps = session($primary);
my $rs = session($replica);
my (@wait_ms, @bad_waits, $max_age_ms, %pids);
$max_age_ms = 0;
my $cycles = 50;
for my $i (1 .. $cycles)
{
	my $tok = $ps->q("INSERT INTO t(v) VALUES ('cycle $i');\nSELECT rr_last_commit_lsn()");
	my $t0 = time();
	my $res = $rs->q("SELECT rr_wait_for_lsn('$tok', 5000)");
	my $ms = (time() - $t0) * 1000;
	push @wait_ms, $ms;
	push @bad_waits, sprintf('cycle %d: %s after %.1f ms', $i, $res, $ms)
	  unless $res eq 't' && $ms < 1000;
	my ($age, $pid) = split /\|/,
	  $rs->q('SELECT round(extract(epoch FROM clock_timestamp() - last_sample_at) * 1000), '
		  . 'worker_pid FROM rr_status');
	$max_age_ms = $age if $age > $max_age_ms;
	$pids{$pid}++;
	my $pause = ($stop_at - time()) / ($cycles - $i + 1) - 0.01;
	usleep($pause * 1_000_000) if $pause > 0;
}
my $visible = $rs->q("SELECT count(*) FROM t WHERE v LIKE 'cycle %'");
my $attack_end = time();

for my $k (@kids)
{
	waitpid($k->[0], 0);
	is($? >> 8, 0, "attacker $k->[1] ran to the end");
}

my @sorted = sort { $a <=> $b } @wait_ms;
my $p50 = $sorted[ int(@sorted / 2) ];
my $max = $sorted[-1];
note sprintf('%d write -> wait cycles under attack over %.1f s: p50 %.2f ms, '
	  . 'p90 %.2f ms, max %.2f ms', scalar @wait_ms, $attack_end - $attack_start,
	$p50, $sorted[ int(@sorted * 0.9) ], $max);
is(scalar @wait_ms, $cycles, "$cycles write -> wait cycles ran");
is_deeply(\@bad_waits, [], 'every wait returned true within 1 s');
is($visible, $cycles, 'every write is visible on the replica after its wait');
note "the newest sample was at most $max_age_ms ms old at every cycle";
cmp_ok($max_age_ms, '<', 1000, 'the worker kept sampling (last_sample_at advanced)');
is_deeply([ keys %pids ], [$worker_pid], 'rr_status.worker_pid never changed');

my $gap = $replica->safe_psql('postgres',
	'SELECT round(coalesce(max(extract(epoch FROM gap)), -1) * 1000) FROM '
	  . '(SELECT sampled_at - lag(sampled_at) OVER (ORDER BY sampled_at) AS gap '
	  . 'FROM rr_lag_history WHERE sampled_at >= to_timestamp('
	  . sprintf('%.3f', $attack_start) . ')) s');
note "largest gap between two samples in rr_lag_history during the attack: $gap ms";
ok($gap > 0 && $gap < 1000, 'rr_lag_history has no gap of a second or more');

# what the attackers saw
my (%seen, @anomalies);
my %expect = (
	rand => qr/^(?:400|404|405)$/,
	fuzz => qr/^(?:200|400|404|405|503)$/,
	big => qr/^(?:400|431)$/,
	fin => qr/^(?:400|none)$/,
	health => qr/^200$/);
for my $k (@kids)
{
	open my $fh, '<', "$dir/$k->[1].txt" or die $!;
	while (my $line = <$fh>)
	{
		chomp $line;
		my ($kind, $f1, $f2) = split / /, $line;
		if ($kind eq 'ERROR')
		{
			push @anomalies, "$k->[1]: $line";
			next;
		}
		if ($kind =~ /^(?:slow|idle|burst)$/)
		{
			# closed by the server: with 408 after about 2 s or earlier when a
			# newcomer displaced it, or at once with no answer when it could
			# not be accepted; never later
			$seen{"$kind $f2"}++;
			push @anomalies, "$k->[1]: $line"
			  unless ($f2 eq '408' && $f1 < 3.5)
			  || ($f2 eq 'none' && $f1 < 1);
			next;
		}
		if ($kind =~ /-open$/)
		{
			$seen{$kind}++;
			push @anomalies, "$k->[1]: $line (open too long)" if $f1 > 3.5;
			next;
		}
		$seen{ $kind . ' ' . ($f2 // '') }++;
		next if $kind eq 'reset';
		# refused while 32 others were held (closed at once, no answer), or
		# displaced by a newcomer before its request was complete (408)
		next if ($f2 // '') =~ /^(?:none|408)$/ && $f1 ne 'timeout';
		push @anomalies, "$k->[1]: $line"
		  unless $f1 ne 'timeout' && ($f2 // '') =~ $expect{$kind};
	}
	close $fh;
}
note 'attack outcomes: ' . join(', ', map { "$_ x$seen{$_}" } sort keys %seen);
is_deeply(\@anomalies, [],
	'every attacking connection got the right answer, or was displaced or closed at once over the limit');
ok(($seen{'slow 408'} // 0) > 0 && ($seen{'idle 408'} // 0) > 0,
	'slow-loris and half-open connections got 408 under load');
ok(($seen{'health 200'} // 0) > 0, 'valid requests were served during the attack');

# afterwards
($ok, my $secs) = http_poll($hport, '/health', sub { $_[0] eq '200' }, 10);
ok($ok, 'the endpoint answers /health after the attack');
note sprintf('/health answered %.2f s after the attackers stopped', $secs);
is($replica->safe_psql('postgres', 'SELECT worker_pid FROM rr_status'),
	$worker_pid, 'the worker pid is the same: it never crashed');
ok(kill(0, $worker_pid), 'the worker process is alive');
my $log = slurp_file($replica->logfile);
unlike($log, qr/rr_router worker.*(?:terminated by signal|exited with exit code)/,
	'the server log shows no worker exit');
my @listening = $log =~ /rr_router HTTP endpoint listening/g;
is(scalar @listening, 1, 'the endpoint was opened once (no worker restart)');

$ps->quit;
$rs->quit;
done_testing();
