
# Copyright (c) 2026, rr_router contributors
#
# RRHttp.pm
#	  Helpers for the TAP tests of rr_router's HTTP endpoint
#	  (test/t/301_http_endpoint.pl, 302_haproxy.pl, 303_http_robustness.pl).
#
# Requests go over plain sockets (IO::Socket::INET, core Perl), so a test
# sees exactly the bytes the worker sent: status line, headers, body, and
# whether and when the connection was closed.  curl is used too, as an
# operator would.

package RRHttp;

use strict;
use warnings FATAL => 'all';

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  http_connect http_raw http_request parse_response parse_state
  http_state http_poll parse_metrics curl_http render_template
);

# A TCP connection to 127.0.0.1:$port, or undef (with $! set).
sub http_connect
{
	my ($port) = @_;
	return IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto => 'tcp',
		Timeout => 5);
}

# Read from $sock until EOF, a reset or $deadline (epoch seconds).
# Returns (bytes read, how it ended: 'eof' | 'reset' | 'timeout').
sub read_all
{
	my ($sock, $deadline) = @_;
	my $buf = '';
	my $sel = IO::Select->new($sock);
	while (1)
	{
		my $left = $deadline - time();
		return ($buf, 'timeout') if $left <= 0;
		next unless $sel->can_read($left);
		my $n = sysread($sock, $buf, 65536, length $buf);
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			return ($buf, 'reset');
		}
		return ($buf, 'eof') if $n == 0;
	}
}

# Send $bytes (may be '') to the endpoint on $port and read until the
# server closes.  Options: timeout (seconds, default 5), shutdown (1:
# half-close our side after sending).  Returns a hash: raw (what came back),
# end ('eof' | 'reset' | 'timeout' | 'refused'), secs (from connect to the
# end), and, if raw parses as an HTTP response, what parse_response returns.
sub http_raw
{
	my ($port, $bytes, %opt) = @_;
	my $t0 = time();
	my $sock = http_connect($port);
	return { raw => '', end => 'refused', secs => time() - $t0, err => "$!" }
	  unless $sock;
	binmode $sock;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length $bytes)
	{
		my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
		last unless defined $n;    # the server may close early (431)
		$off += $n;
	}
	shutdown($sock, 1) if $opt{shutdown};
	my ($raw, $end) = read_all($sock, $t0 + ($opt{timeout} // 5));
	close $sock;
	my $r = parse_response($raw);
	$r->{raw} = $raw;
	$r->{end} = $end;
	$r->{secs} = time() - $t0;
	return $r;
}

# Split an HTTP response into status, reason, version, headers (names in
# lower case) and body.  Sets error when it is not a well-formed HTTP/1.x
# response whose Content-Length matches its body (head => 1: a response to
# HEAD, whose body must be empty).
sub parse_response
{
	my ($raw, %opt) = @_;
	my %r = (status => undef, headers => {}, body => undef);
	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	if (!defined $body)
	{
		$r{error} = $raw eq '' ? 'no response' : 'no end of head';
		return \%r;
	}
	my ($line, @hdrs) = split /\r\n/, $head;
	if ($line !~ m{^(HTTP/1\.[01]) ([1-5][0-9][0-9]) (.*)$})
	{
		$r{error} = "bad status line '$line'";
		return \%r;
	}
	@r{qw(version status reason)} = ($1, $2, $3);
	for my $h (@hdrs)
	{
		if ($h !~ /^([!#\$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/)
		{
			$r{error} = "bad header line '$h'";
			return \%r;
		}
		$r{headers}{ lc $1 } = $2;
	}
	$r{body} = $body;
	my $cl = $r{headers}{'content-length'};
	if (!defined $cl)
	{
		$r{error} = 'no Content-Length';
	}
	elsif ($opt{head} ? length($body) != 0 : length($body) != $cl)
	{
		$r{error} = sprintf('Content-Length %s but %d body bytes',
			$cl, length $body);
	}
	return \%r;
}

# One request: "$method $target HTTP/1.1" with Host and Connection: close.
# Returns what http_raw returns (checked as a HEAD answer for HEAD).
sub http_request
{
	my ($port, $method, $target, %opt) = @_;
	my $req = "$method $target HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "User-Agent: rr_router-tap\r\nConnection: close\r\n\r\n";
	my $r = http_raw($port, $req, %opt);
	if ($method eq 'HEAD')
	{
		my $h = parse_response($r->{raw}, head => 1);
		$h->{$_} = $r->{$_} for qw(raw end secs);
		return $h;
	}
	return $r;
}

# The one-line body of a state answer as a hash: role, staleness (seconds,
# undef when 'unknown'), lag_bytes (undef when 'unknown'), replica_reads
# ('on' | 'off'); undef if the body is not exactly one such line.
sub parse_state
{
	my ($body) = @_;
	return undef unless defined $body;
	return undef
	  unless $body =~
	  /\Arole=(primary|replica) staleness=(?:([0-9]+\.[0-9]+)s|(unknown)) lag_bytes=(?:([0-9]+)|unknown) replica_reads=(on|off)\n\z/;
	return {
		role => $1,
		staleness => $3 ? undef : $2,
		lag_bytes => $4,
		replica_reads => $5
	};
}

# GET $target on $port: (status, parsed state body or undef, response).
sub http_state
{
	my ($port, $target) = @_;
	my $r = http_request($port, 'GET', $target);
	return ($r->{status} // 'none', parse_state($r->{body}), $r);
}

# GET $target every 50 ms until $cond->($status, $state) is true or
# $timeout_s seconds pass.  Returns (ok, seconds, last status, last state).
sub http_poll
{
	my ($port, $target, $cond, $timeout_s) = @_;
	my $t0 = time();
	while (1)
	{
		my ($st, $state) = http_state($port, $target);
		return (1, time() - $t0, $st, $state) if $cond->($st, $state);
		return (0, time() - $t0, $st, $state)
		  if time() - $t0 > ($timeout_s // 30);
		usleep(50_000);
	}
}

# Parse a Prometheus text exposition (format 0.0.4).  Returns (samples,
# errors, types): samples maps 'name{labels as sent}' (or 'name') to its
# value; errors lists every line that breaks the format, a sample whose
# family has no TYPE before it, a TYPE given twice, a family whose samples
# are not contiguous and a series given twice; types maps family names to
# their TYPE.
sub parse_metrics
{
	my ($text) = @_;
	my (%samples, %types, %help, %closed, @errors);
	my $name_re = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
	my $label_re = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"/;
	my $num_re =
	  qr/(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN)/;
	my $current = '';

	push @errors, 'the exposition does not end with a newline'
	  unless $text =~ /\n\z/;
	my $n = 0;
	for my $line (split /\n/, $text)
	{
		$n++;
		next if $line eq '';
		if ($line =~ /^#/)
		{
			if ($line =~ /^# TYPE ($name_re) (counter|gauge|histogram|summary|untyped)$/)
			{
				push @errors, "line $n: second TYPE for $1" if $types{$1};
				$types{$1} = $2;
			}
			elsif ($line =~ /^# HELP ($name_re) (.*)$/)
			{
				push @errors, "line $n: second HELP for $1" if $help{$1}++;
			}
			elsif ($line =~ /^# (TYPE|HELP)/)
			{
				push @errors, "line $n: malformed $1 line: $line";
			}
			next;
		}
		if ($line !~
			/^($name_re)(\{(?:$label_re(?:,$label_re)*,?)?\})? ($num_re)(?: -?[0-9]+)?$/)
		{
			push @errors, "line $n: not a sample: $line";
			next;
		}
		my ($name, $labels, $value) = ($1, $2 // '', $3);
		my $family = $name;
		if (!$types{$family})
		{
			# histogram and summary samples carry suffixes
			(my $base = $name) =~ s/_(?:sum|count|bucket)$//;
			$family = $base if $types{$base};
		}
		push @errors, "line $n: $name has no TYPE before it"
		  unless $types{$family};
		if ($family ne $current)
		{
			push @errors, "line $n: samples of $family are not contiguous"
			  if $closed{$family};
			$closed{$current} = 1 if $current ne '';
			$current = $family;
		}
		my $key = "$name$labels";
		push @errors, "line $n: series $key given twice"
		  if exists $samples{$key};
		$value = 9**9**9 if $value =~ /^\+?Inf$/;
		$value = -9**9**9 if $value eq '-Inf';
		$samples{$key} = $value;
	}
	return (\%samples, \@errors, \%types);
}

# curl http://127.0.0.1:$port$target with extra @args.  Returns a hash:
# status (curl's %{http_code}, '000' when no answer), body, headers (the
# raw header block), rc (curl's exit code).
sub curl_http
{
	my ($port, $target, @args) = @_;
	my ($out, $err) = ('', '');
	require IPC::Run;
	IPC::Run::run(
		[
			'curl', '-sS', '--max-time', '5', '-D', '/dev/stderr',
			'-o', '-', '-w', '\nRR_HTTP_CODE=%{http_code}', @args,
			"http://127.0.0.1:$port$target"
		],
		'>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	my $status = $out =~ s/\n?RR_HTTP_CODE=([0-9]+)\z// ? $1 : '000';
	return { status => $status, body => $out, headers => $err, rc => $rc };
}

# Copy template $in to $out replacing every @NAME@ with $vars->{NAME}; dies
# if a placeholder is left without a value.  Returns the text.
sub render_template
{
	my ($in, $out, $vars) = @_;
	open my $fh, '<', $in or die "could not read $in: $!";
	my $text = do { local $/; <$fh> };
	close $fh;
	$text =~ s/@([A-Z][A-Z0-9_]*)@/exists $vars->{$1} ? $vars->{$1} : die "no value for \@$1\@ in $in\n"/ge;
	open $fh, '>', $out or die "could not write $out: $!";
	print $fh $text;
	close $fh;
	return $text;
}

1;
