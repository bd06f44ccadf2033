
# Copyright (c) 2026, rr_router contributors
#
# RRWire.pm
#	  A minimal client of the PostgreSQL frontend/backend protocol (version
#	  3.0) for tests that must see every message the server sends, which
#	  libpq does not show: how many ParameterStatus messages a round trip
#	  carries and where they come.  Trust authentication only.
#
#	my $c = RRWire->connect($node, options => '-c rr_router.report_commit_lsn=on');
#	$c->{startup_params}{'rr_router.last_commit_lsn'}   # reported at start
#	my $msgs = $c->query("BEGIN; INSERT ...; COMMIT;");  # up to ReadyForQuery
#	my @v = RRWire::reports($msgs, 'rr_router.last_commit_lsn');
#	$msgs = $c->pipeline('BEGIN', 'INSERT ...', 'COMMIT');  # extended protocol, one Sync
#	my ($lsn) = $c->row('SELECT rr_last_commit_lsn()');

package RRWire;

use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use IO::Socket::UNIX;

# Connect to $node's database 'postgres' as the operating-system user;
# %params are further startup parameters.  Dies unless the server accepts
# the connection without a password.
sub connect
{
	my ($class, $node, %params) = @_;
	my $host = $node->host;
	my $port = $node->port;
	my $sock =
	  $host =~ m{^/}
	  ? IO::Socket::UNIX->new(Peer => "$host/.s.PGSQL.$port")
	  : IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port);
	die "cannot connect to $host:$port: $!" unless $sock;
	binmode $sock;

	my $self = bless { sock => $sock, startup_params => {} }, $class;
	my %startup = (
		user => scalar(getpwuid($<)),
		database => 'postgres',
		%params);
	my $body = pack('N', 196608)
	  . join('', map { "$_\0$startup{$_}\0" } sort keys %startup) . "\0";
	$self->_send(pack('N', length($body) + 4) . $body);

	for my $m (@{ $self->until_ready })
	{
		my ($type, $data) = @$m;
		die 'the server asked for a password: only trust authentication is supported'
		  if $type eq 'R' && unpack('N', $data) != 0;
		die 'connection refused: ' . error_text($data) if $type eq 'E';
		if ($type eq 'S')
		{
			my ($name, $value) = split /\0/, $data, -1;
			$self->{startup_params}{$name} = $value;
		}
	}
	return $self;
}

sub _send
{
	my ($self, $bytes) = @_;
	my $off = 0;
	while ($off < length $bytes)
	{
		my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
		die "write failed: $!" unless defined $n;
		$off += $n;
	}
	return;
}

sub _read_exactly
{
	my ($self, $len) = @_;
	my $buf = '';
	while (length $buf < $len)
	{
		my $n = sysread($self->{sock}, $buf, $len - length $buf, length $buf);
		die "read failed: $!" unless defined $n;
		die 'the server closed the connection' if $n == 0;
	}
	return $buf;
}

# One backend message as [type, body].
sub read_message
{
	my ($self) = @_;
	my ($type, $len) = unpack('a N', $self->_read_exactly(5));
	return [ $type, $self->_read_exactly($len - 4) ];
}

# Every message up to and including the next ReadyForQuery.
sub until_ready
{
	my ($self) = @_;
	my @msgs;
	while (1)
	{
		my $m = $self->read_message;
		push @msgs, $m;
		return \@msgs if $m->[0] eq 'Z';
	}
}

sub _message
{
	my ($type, $body) = @_;
	return $type . pack('N', length($body) + 4) . $body;
}

# Run $sql through the simple protocol; the messages of that round trip.
sub query
{
	my ($self, $sql) = @_;
	$self->_send(_message('Q', "$sql\0"));
	return $self->until_ready;
}

# Run each statement through the extended protocol (unnamed statement and
# portal: Parse, Bind, Execute), all before one Sync; the messages of that
# round trip.
sub pipeline
{
	my ($self, @statements) = @_;
	my $out = '';
	for my $sql (@statements)
	{
		$out .= _message('P', "\0$sql\0" . pack('n', 0));
		$out .= _message('B', "\0\0" . pack('n n n', 0, 0, 0));
		$out .= _message('E', "\0" . pack('N', 0));
	}
	$out .= _message('S', '');
	$self->_send($out);
	return $self->until_ready;
}

# The first row of $sql's result as a list of text values (undef for NULL);
# dies on an error.
sub row
{
	my ($self, $sql) = @_;
	my $msgs = $self->query($sql);
	my @row;
	for my $m (@$msgs)
	{
		die "query failed: $sql: " . error_text($m->[1]) if $m->[0] eq 'E';
		next unless $m->[0] eq 'D' && !@row;
		my $data = $m->[1];
		my $n = unpack('n', $data);
		my $pos = 2;
		for (1 .. $n)
		{
			my $len = unpack('l>', substr($data, $pos, 4));
			$pos += 4;
			if ($len < 0) { push @row, undef; next; }
			push @row, substr($data, $pos, $len);
			$pos += $len;
		}
	}
	return @row;
}

# The values of the ParameterStatus messages named $name among $msgs.
sub reports
{
	my ($msgs, $name) = @_;
	my @values;
	for my $m (@$msgs)
	{
		next unless $m->[0] eq 'S';
		my ($n, $v) = split /\0/, $m->[1], -1;
		push @values, $v if $n eq $name;
	}
	return @values;
}

# The message types of a round trip as one string, e.g. "CCCSSZ".
sub types
{
	my ($msgs) = @_;
	return join '', map { $_->[0] } @$msgs;
}

# "SQLSTATE: message" of an ErrorResponse body.
sub error_text
{
	my ($data) = @_;
	my %f;
	for my $field (split /\0/, $data)
	{
		$f{ substr($field, 0, 1) } = substr($field, 1) if length $field;
	}
	return ($f{C} // '?????') . ': ' . ($f{M} // '');
}

# The SQLSTATEs of the ErrorResponses among $msgs.
sub errors
{
	my ($msgs) = @_;
	return map { error_text($_->[1]) } grep { $_->[0] eq 'E' } @$msgs;
}

sub close
{
	my ($self) = @_;
	$self->_send(_message('X', ''));
	close $self->{sock};
	return;
}

1;
