
# Copyright (c) 2026, rr_router developers
#
# RRWire.pm
#	  A minimal PostgreSQL frontend speaking the wire protocol (version 3)
#	  over a node's Unix socket, for tests that need what libpq and psql do
#	  not expose: suspended portals (Execute with a row limit), pipelines of
#	  several messages before one Sync, and every message the server sends
#	  back, ParameterStatus included.
#
# Only trust authentication is supported, which is what the test clusters
# use for local connections.
#
#	my $c = RRWire->connect($node);
#	$c->send_parse_bind_execute('SELECT ...', max_rows => 1, portal => 'p1');
#	$c->send_sync;
#	my @msgs = $c->read_until_ready;   # [type, payload] pairs

package RRWire;

use strict;
use warnings FATAL => 'all';

use IO::Socket::UNIX;
use IO::Select;
use Test::More;

# Open a session as the node's default user on database $db (postgres).
sub connect
{
	my ($class, $node, %opt) = @_;
	my $path = $node->host . '/.s.PGSQL.' . $node->port;
	my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path)
	  or die "cannot connect to $path: $!";
	my $self = bless { sock => $sock, buf => '' }, $class;

	my %params = (
		user => $opt{user} // $ENV{USER} // scalar(getpwuid($<)),
		database => $opt{dbname} // 'postgres',
		%{ $opt{options} // {} });
	my $body = pack('N', 196608);
	$body .= "$_\0$params{$_}\0" for sort keys %params;
	$body .= "\0";
	$self->_write(pack('N', 4 + length $body) . $body);

	my @msgs = $self->read_until_ready;
	for my $m (@msgs)
	{
		die 'authentication other than trust requested'
		  if $m->[0] eq 'R' && unpack('N', $m->[1]) != 0;
		die 'connection refused: ' . error_fields($m)->{M}
		  if $m->[0] eq 'E';
	}
	$self->{startup} = \@msgs;
	return $self;
}

sub _write
{
	my ($self, $data) = @_;
	my $off = 0;
	while ($off < length $data)
	{
		my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
		die "write failed: $!" unless defined $n;
		$off += $n;
	}
	return;
}

# Queue one typed message (not flushed until the next _write).
sub _msg
{
	my ($type, $body) = @_;
	return $type . pack('N', 4 + length $body) . $body;
}

# Simple Query: one round trip, possibly several statements.
sub send_query
{
	my ($self, $sql) = @_;
	$self->_write(_msg('Q', "$sql\0"));
	return;
}

# Parse, Bind and Execute $sql (no parameters) into portal $opt{portal}
# (default unnamed) with a row limit $opt{max_rows} (default 0: all rows).
# Nothing is flushed to the client until Sync or Flush.
sub send_parse_bind_execute
{
	my ($self, $sql, %opt) = @_;
	my $portal = $opt{portal} // '';
	my $data = _msg('P', "\0$sql\0" . pack('n', 0));
	$data .= _msg('B', "$portal\0\0" . pack('nnn', 0, 0, 0));
	$data .= _msg('E', "$portal\0" . pack('N', $opt{max_rows} // 0));
	$self->_write($data);
	return;
}

# Execute an existing portal again, for up to $max_rows rows (0: all).
sub send_execute
{
	my ($self, $portal, $max_rows) = @_;
	$self->_write(_msg('E', "$portal\0" . pack('N', $max_rows // 0)));
	return;
}

sub send_flush { my ($self) = @_; $self->_write(_msg('H', '')); return; }
sub send_sync  { my ($self) = @_; $self->_write(_msg('S', '')); return; }

# Read one message, waiting up to $timeout seconds (default 180); undef on
# timeout or end of stream.
sub read_message
{
	my ($self, $timeout) = @_;
	my $sel = IO::Select->new($self->{sock});
	my $deadline = time + ($timeout // 180);
	for (;;)
	{
		if (length $self->{buf} >= 5)
		{
			my ($type, $len) = unpack('a N', $self->{buf});
			if (length $self->{buf} >= 1 + $len)
			{
				my $payload = substr($self->{buf}, 5, $len - 4);
				substr($self->{buf}, 0, 1 + $len) = '';
				return [ $type, $payload ];
			}
		}
		my $left = $deadline - time;
		return undef if $left <= 0 || !$sel->can_read($left);
		my $n = sysread($self->{sock}, my $chunk, 65536);
		return undef unless $n;
		$self->{buf} .= $chunk;
	}
}

# Read messages up to and including ReadyForQuery ('Z'); dies on timeout.
sub read_until_ready
{
	my ($self, $timeout) = @_;
	my @msgs;
	for (;;)
	{
		my $m = $self->read_message($timeout);
		die 'no ReadyForQuery from the server' unless defined $m;
		push @msgs, $m;
		return @msgs if $m->[0] eq 'Z';
	}
}

# Read messages until one of type $type arrives (included); dies on timeout.
sub read_until
{
	my ($self, $type, $timeout) = @_;
	my @msgs;
	for (;;)
	{
		my $m = $self->read_message($timeout);
		die "no '$type' message from the server" unless defined $m;
		push @msgs, $m;
		return @msgs if $m->[0] eq $type;
	}
}

# The fields of an ErrorResponse or NoticeResponse, by code letter.
sub error_fields
{
	my ($m) = @_;
	my %f;
	for my $field (split /\0/, $m->[1])
	{
		$f{ substr($field, 0, 1) } = substr($field, 1) if length $field;
	}
	return \%f;
}

# The SQLSTATE of the first ErrorResponse among @msgs, or undef.
sub sqlstate
{
	my (@msgs) = @_;
	for my $m (@msgs)
	{
		return error_fields($m)->{C} if $m->[0] eq 'E';
	}
	return undef;
}

# The values of the DataRow messages among @msgs, one array per row.
sub rows
{
	my (@msgs) = @_;
	my @rows;
	for my $m (grep { $_->[0] eq 'D' } @msgs)
	{
		my ($n, $rest) = unpack('n a*', $m->[1]);
		my @vals;
		for (1 .. $n)
		{
			my $len = unpack('l>', $rest);
			$rest = substr($rest, 4);
			if ($len < 0) { push @vals, undef; next; }
			push @vals, substr($rest, 0, $len);
			$rest = substr($rest, $len);
		}
		push @rows, \@vals;
	}
	return @rows;
}

# The ParameterStatus messages among @msgs, as [name, value] pairs (an
# empty value is '').
sub parameter_statuses
{
	my (@msgs) = @_;
	return map { [ (split /\0/, $_->[1], -1)[ 0, 1 ] ] }
	  grep { $_->[0] eq 'S' } @msgs;
}

sub close
{
	my ($self) = @_;
	$self->_write(_msg('X', ''));
	close($self->{sock});
	return;
}

1;
