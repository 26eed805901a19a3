# The Kafka listener (docs/kafka.md): kcat -L lists the topics the listener's role may see, with
# their partitions; malformed, oversized and unserved frames close their connection and nothing
# else (the server and the other clients carry on); the connection cap holds; non-loopback
# addresses are refused without pgtopic.kafka_allow_unauthenticated; an unknown ApiVersions
# version gets UNSUPPORTED_VERSION with our ranges; ListOffsets (kcat -Q and raw frames) gives
# the log start, the last stable offset and offsets for times; CreateTopics and DeleteTopics obey
# the role's rights; a standby runs no listener until it is promoted; a superuser kafka_role is
# refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use JSON::PP;

if (system('kcat -V >/dev/null 2>&1') != 0)
{
    plan skip_all => 'kcat is not installed';
}

my $kport = $ENV{PGTOPIC_KAFKA_TEST_PORT} // PostgreSQL::Test::Cluster::get_free_port();
my $kport_standby =
  $ENV{PGTOPIC_KAFKA_TEST_PORT} ? $ENV{PGTOPIC_KAFKA_TEST_PORT} + 1 : PostgreSQL::Test::Cluster::get_free_port();

my $node = PostgreSQL::Test::Cluster->new('kafka');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pgtopic'
pgtopic.database = 'postgres'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pgtopic;
    CREATE ROLE kafka_client LOGIN;
    GRANT pgtopic_consumer, pgtopic_producer TO kafka_client;
    SELECT pgtopic.create_topic('orders', 3);
    SELECT pgtopic.create_topic('audit', 1);
    SELECT pgtopic.create_topic('secret', 2);
    SELECT pgtopic.grant_topic('orders', 'kafka_client', 'consume');
    SELECT pgtopic.grant_topic('audit', 'kafka_client', 'produce');
});
$node->append_conf('postgresql.conf', qq{
pgtopic.kafka_listen_addresses = '127.0.0.1, 0.0.0.0'
pgtopic.kafka_port = $kport
pgtopic.kafka_role = 'kafka_client'
pgtopic.kafka_max_connections = 4
pgtopic.kafka_max_frame_bytes = '1MB'
});
$node->restart;

my $broker = "127.0.0.1:$kport";

sub kcat_metadata
{
    my @extra = @_;
    my $at = $broker;
    if (@extra && $extra[0] eq '-b') { (undef, $at) = splice(@extra, 0, 2); }
    my ($out, $err);
    for my $try (1 .. 50)
    {
        ($out, $err) = run_command([ 'kcat', '-L', '-J', '-b', $at, '-m', '5', @extra ]);
        last if $out =~ /"topics"/;
        sleep 1;    # the listener starts after recovery
    }
    return (decode_json($out), $err);
}

my ($md) = kcat_metadata();
my %topics = map { $_->{topic} => $_ } @{ $md->{topics} };
is_deeply([ sort keys %topics ], [ 'audit', 'orders' ], 'kcat -L lists the topics the role has rights on');
is(scalar @{ $topics{orders}{partitions} }, 3, 'orders has 3 partitions');
is_deeply([ map { $_->{partition} } @{ $topics{orders}{partitions} } ], [ 0, 1, 2 ], 'partitions in order');
is($topics{orders}{partitions}[1]{leader}, 1, 'every partition is led by broker 1');
is($md->{brokers}[0]{name}, "127.0.0.1:$kport", 'the broker advertises the listen address and port');

my ($one) = kcat_metadata('-t', 'orders');
is(scalar @{ $one->{topics} }, 1, 'kcat -L -t orders: one topic');
is(scalar @{ $one->{topics}[0]{partitions} }, 3, '... with its partitions');
my ($none) = kcat_metadata('-t', 'secret');
ok(defined $none->{topics}[0]{error}, 'a topic without rights is reported as an error, not listed');

ok($node->log_contains('not listening on non-loopback address 0.0.0.0'),
    'a non-loopback address is refused without kafka_allow_unauthenticated');

# ---- raw frames -----------------------------------------------------------------------------
sub connect_raw
{
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $kport, Proto => 'tcp', Timeout => 5)
      or die "connect: $!";
    return $sock;
}

# Reads one response frame, or undef when the server closed the connection.
sub read_frame
{
    my ($sock) = @_;
    my $head = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 10;
    while (length($head) < 4)
    {
        my $n = sysread($sock, $head, 4 - length($head), length($head));
        if (!$n) { alarm 0; return undef; }
    }
    my $size = unpack('N', $head);
    my $body = '';
    while (length($body) < $size)
    {
        my $n = sysread($sock, $body, $size - length($body), length($body));
        if (!$n) { alarm 0; return undef; }
    }
    alarm 0;
    return $body;
}

sub frame { my ($payload) = @_; return pack('N', length($payload)) . $payload; }
sub header { my ($key, $version, $corr) = @_; return pack('n n N n', $key, $version, $corr, 4) . 'test'; }

sub closed_after
{
    my ($bytes, $name) = @_;
    my $s = connect_raw();
    syswrite($s, $bytes);
    ok(!defined read_frame($s), $name);
    close $s;
}

closed_after("\xff\xff\xff\xff", 'a negative frame size closes the connection');
closed_after(pack('N', 2 * 1024 * 1024) . 'x' x 100, 'a frame above kafka_max_frame_bytes closes the connection');
closed_after(pack('N', 3) . 'abc', 'a frame below a request header closes the connection');
closed_after(frame(header(3, 4, 7) . "\x7f\xff\xff\xff"), 'an impossible topic count closes the connection');
closed_after(frame(header(3, 1, 7) . "\x00\x00\x00\x01\x00\x09ab"), 'a truncated topic name closes the connection');
closed_after(frame(header(9, 1, 7) . pack('n', 1) . 'g' . pack('N', 0)),
    'an API the listener does not serve (OffsetFetch) closes the connection');
# A small frame cannot make the loop allocate or work for long: at most 10,000 Metadata topics.
closed_after(frame(header(3, 1, 7) . pack('N', 10_001) . ("\x00\x00" x 10_001)),
    'a Metadata request naming more than 10,000 topics closes the connection');
{
    my $s = connect_raw();
    syswrite($s, frame(header(3, 1, 8) . pack('N', 2) . ("\x00\x00" x 2)));
    ok(defined read_frame($s), 'a Metadata request naming 2 topics is answered');
    close $s;
}

# ApiVersions v9: answered in v0 with UNSUPPORTED_VERSION (35) and the ranges served.
my $s = connect_raw();
syswrite($s, frame(header(18, 9, 42) . "\x00"));
my $resp = read_frame($s);
ok(defined $resp, 'an unknown ApiVersions version is answered');
my ($corr, $error, $count) = unpack('N n N', $resp);
is($corr, 42, '... with its correlation id');
is($error, 35, '... and UNSUPPORTED_VERSION');
my %ranges;
for my $i (0 .. $count - 1)
{
    my ($key, $min, $max) = unpack('n n n', substr($resp, 10 + 6 * $i, 6));
    $ranges{$key} = "$min-$max";
}
is_deeply(\%ranges, { 0 => '3-7', 1 => '4-11', 2 => '1-2', 3 => '0-4', 18 => '0-3', 19 => '0-4', 20 => '0-1', 22 => '0-1' },
    '... listing Produce 3-7, Fetch 4-11, ListOffsets 1-2, Metadata 0-4, ApiVersions 0-3, CreateTopics 0-4, DeleteTopics 0-1, InitProducerId 0-1');
# The same connection goes on: ApiVersions v0, then a Metadata v0 for all topics.
syswrite($s, frame(header(18, 0, 43)));
$resp = read_frame($s);
is(unpack('N', $resp), 43, 'the connection serves the next request');
syswrite($s, frame(header(3, 0, 44) . pack('N', 0)));
$resp = read_frame($s);
ok(defined $resp && $resp =~ /orders/ && $resp !~ /secret/, 'Metadata v0 lists the visible topics');
close $s;

# Two requests in one write: answered in order.
$s = connect_raw();
syswrite($s, frame(header(18, 1, 1)) . frame(header(18, 2, 2)));
my ($r1, $r2) = (read_frame($s), read_frame($s));
is_deeply([ unpack('N', $r1), unpack('N', $r2) ], [ 1, 2 ], 'pipelined requests are answered in order');
close $s;

# The connection cap: 4 open, the 5th is closed at once; after they close, new ones work.
sleep 1;    # let the listener see the connections above close
my @held = map { connect_raw() } 1 .. 4;
for my $h (@held)
{
    syswrite($h, frame(header(18, 0, 5)));
    ok(defined read_frame($h), 'a connection under the cap is served');
}
my $extra = connect_raw();
syswrite($extra, frame(header(18, 0, 6)));
ok(!defined read_frame($extra), 'the connection above kafka_max_connections is closed');
close $_ for @held, $extra;
sleep 1;

# Random bodies behind valid headers of every served API and version (seeded): each gets a
# response or a closed connection, never a crash.
srand(14);
my ($answered, $closed) = (0, 0);
for my $i (1 .. 300)
{
    # (Fetch is left out: a random body that decodes may ask to wait up to max_wait_ms.)
    my @apis = ([ 0, 3, 7 ], [ 2, 1, 2 ], [ 3, 0, 4 ], [ 18, 0, 3 ], [ 19, 0, 4 ], [ 20, 0, 1 ]);
    my ($key, $min, $max) = @{ $apis[ int(rand(@apis)) ] };
    my $version = $min + int(rand($max - $min + 1));
    my $body = join('', map { chr(int(rand(4)) == 0 ? 255 : int(rand(8))) } 1 .. int(rand(40)));
    my $s = connect_raw();
    syswrite($s, frame(header($key, $version, $i) . $body));
    if (defined read_frame($s)) { $answered++ } else { $closed++ }
    close $s;
}
ok($answered + $closed == 300, "300 random request bodies: $answered answered, $closed closed");

sleep 1;
($md) = kcat_metadata();
is(scalar @{ $md->{topics} }, 2, 'kcat -L still works after all the bad frames');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.fetch('audit', 0, 0, 100)}), '0',
    '... and no random Produce body stored anything');
ok(!$node->log_contains('terminated by signal'), 'no process died of a signal');

# ---- Fetch and Produce with kcat ---------------------------------------------------------------
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('kc', 2);
    SELECT pgtopic.grant_topic('kc', 'kafka_client', 'consume');
    SELECT pgtopic.grant_topic('kc', 'kafka_client', 'produce');
    SELECT pgtopic.produce('kc', 'v0'::text, 'k0', '{"h": "x", "trace": "t1"}', 0);
    SELECT pgtopic.produce('kc', '\x01feff7f'::bytea, NULL, NULL, 0);
    SELECT pgtopic.produce('kc', 'p1'::text, 'kp', NULL, 1);
});
$node->safe_psql('postgres', q{
    BEGIN; SELECT pgtopic.produce('kc', 'rolled back'::text, partition => 0); ROLLBACK;
    SELECT pgtopic.produce('kc', 'after the gap'::text, 'k3', NULL, 0);
});
sub kcat_consume
{
    my @args = @_;
    my ($out, $err) = run_command([ 'kcat', '-b', $broker, '-C', '-e', '-X', 'check.crcs=true', '-q',
        '-f', '%p|%o|%k|%s|%h\n', @args ]);
    return $out;
}
is(kcat_consume('-t', 'kc', '-p', '0', '-o', 'beginning'),
    "0|0|k0|v0|h=x,trace=t1\n0|1||\x01\xfe\xff\x7f|\n0|3|k3|after the gap|",
    'kcat -C -e -o beginning reads SQL-produced messages byte for byte (CRCs checked), past the rolled-back offset 2');
is(kcat_consume('-t', 'kc', '-p', '1', '-o', 'beginning'), "1|0|kp|p1|", '... and partition 1');
is(kcat_consume('-t', 'kc', '-p', '0', '-o', 'end'), '', 'kcat -o end: nothing');
is(kcat_consume('-t', 'kc', '-p', '0', '-o', '-1'), "0|3|k3|after the gap|", 'kcat -o -1: the last message');
is(kcat_consume('-t', 'kc', '-p', '0', '-o', '-3'), "0|1||\x01\xfe\xff\x7f|\n0|3|k3|after the gap|",
    'kcat -o -3: from offset 1 (the gap at 2 skipped)');
is(kcat_consume('-t', 'orders', '-p', '0', '-o', 'beginning', '-m', '3'), '', 'an empty partition: nothing');

# A producer transaction held open in SQL holds Kafka fetches at the LSO; what committed after
# it appears once it ends.
my $tx = $node->background_psql('postgres');
$tx->query_safe(q{BEGIN; SELECT pgtopic.produce('kc', 'held'::text, partition => 1)});
$node->safe_psql('postgres', q{SELECT pgtopic.produce('kc', 'behind'::text, partition => 1)});
is(kcat_consume('-t', 'kc', '-p', '1', '-o', 'beginning'), "1|0|kp|p1|",
    'an open SQL transaction holds Kafka fetches at the last stable offset');
$tx->query_safe('COMMIT');
$tx->quit;
is(kcat_consume('-t', 'kc', '-p', '1', '-o', 'beginning'), "1|0|kp|p1|\n1|1||held|\n1|2||behind|",
    '... and once it commits, both come');

# kcat -P: keyed messages with headers, acks=all, to the partition kcat chose.
my ($pout, $perr) = run_command([ 'bash', '-c',
    "printf 'ka:va\\nkb:vb\\n:no key\\n' | kcat -b $broker -P -t kc -p 1 -K: -Z -H tr=abc -H z=1 -X acks=all" ]);
is($node->safe_psql('postgres',
    q{SELECT string_agg(format('%s|%s|%s|%s', msg_offset, key, convert_from(value, 'UTF8'), headers), E'\n' ORDER BY msg_offset)
        FROM pgtopic.fetch('kc', 1, 3, 100)}),
  qq{3|ka|va|{"z": "1", "tr": "abc"}\n4|kb|vb|{"z": "1", "tr": "abc"}\n5||no key|{"z": "1", "tr": "abc"}},
  'kcat -P: pgtopic.fetch sees the keyed messages and headers at partition 1, offsets 3-5') or diag($perr);
is(kcat_consume('-t', 'kc', '-p', '1', '-o', '3'),
    "1|3|ka|va|tr=abc,z=1\n1|4|kb|vb|tr=abc,z=1\n1|5||no key|tr=abc,z=1", '... and kcat -C reads them back');

# Stored as sent: a key that is not text, duplicate header keys in their order, an empty and a
# missing header value, the record's timestamp; read back the same by kcat and by SQL.
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('kfid', 1);
    SELECT pgtopic.grant_topic('kfid', 'kafka_client', 'consume');
    SELECT pgtopic.grant_topic('kfid', 'kafka_client', 'produce');
});
($pout, $perr) = run_command([ 'bash', '-c',
    "printf 'x\\xff\\x00:v1\\n:v2\\n' | kcat -b $broker -P -t kfid -p 0 -K: -Z -H b=2 -H a=1 -H b=3 -H e= -H n -X acks=all" ]);
is($node->safe_psql('postgres',
    q{SELECT string_agg(format('%s|%s|%s|%s|%s|%s', msg_offset, key, convert_from(value, 'UTF8'), header_keys,
                               header_values, created_at IS NOT NULL), E'\n' ORDER BY msg_offset)
        FROM pgtopic.fetch_records('kfid', 0, 0, 100)}),
  qq{0|\\x78ff00|v1|{b,a,b,e,n}|{"\\\\x32","\\\\x31","\\\\x33","\\\\x",NULL}|t\n1||v2|{b,a,b,e,n}|{"\\\\x32","\\\\x31","\\\\x33","\\\\x",NULL}|t},
  'kcat -P: a binary key and headers (duplicates, order, empty and null values) stored byte for byte, with the timestamp')
  or diag($perr);
is($node->safe_psql('postgres', q{SELECT key IS NULL, headers FROM pgtopic.fetch('kfid', 0, 0, 1)}),
    qq{t|{"a": "1", "b": "3", "e": "", "n": null}}, 'fetch (text keys): such a key is NULL, the headers a jsonb object');
is(kcat_consume('-t', 'kfid', '-p', '0', '-o', 'beginning'),
    "0|0|x\xff\x00|v1|b=2,a=1,b=3,e=,n=NULL\n0|1||v2|b=2,a=1,b=3,e=,n=NULL", '... and kcat -C reads them back byte for byte');
my ($ts) = run_command([ 'kcat', '-b', $broker, '-C', '-e', '-q', '-t', 'kfid', '-p', '0', '-o', '0', '-c', '1', '-f', '%T' ]);
is($ts, $node->safe_psql('postgres',
    q{SELECT (extract(epoch FROM created_at) * 1000)::bigint FROM pgtopic.fetch_records('kfid', 0, 0, 1)}),
    'the timestamp kcat reads is the CreateTime it sent (created_at)');

my $orders_before = $node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.fetch('orders', 0, 0, 100)});
($pout, $perr) = run_command([ 'bash', '-c',
    "printf 'v\\n' | kcat -b $broker -P -t orders -p 0 -X acks=all -X message.send.max.retries=0" ]);
like($perr, qr/TOPIC_AUTHORIZATION_FAILED|authorization/i, 'Produce without the produce right: TOPIC_AUTHORIZATION_FAILED')
  or diag($perr);
# (librdkafka sends no compressed batch to pgtopic: its API versions do not enable the codecs; the
# kafka-python test in test/kafka/kafka_clients.py checks UNSUPPORTED_COMPRESSION_TYPE.)
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.fetch('orders', 0, 0, 100)}), $orders_before,
    '... it stored nothing');

# Long-poll: a Fetch v4 at the end waits max_wait_ms, or until a producer commits.
sub fetch_v4
{
    my ($partition, $offset, $max_wait, $max_bytes) = @_;
    $max_bytes //= 1048576;
    return frame(header(1, 4, 77) . pack('N N N N c', 0xffffffff, $max_wait, 1, $max_bytes, 1) . pack('N', 1)
        . pack('n', 2) . 'kc' . pack('N', 1) . pack('N', $partition) . pack('q>', $offset) . pack('N', $max_bytes));
}
# max_bytes: at least one whole batch (of one record) even when it is over max_bytes.
$s = connect_raw();
syswrite($s, fetch_v4(0, 0, 0, 10));
$resp = read_frame($s);
ok(defined $resp && $resp =~ /v0/ && $resp !~ /after the gap/, 'Fetch with max_bytes 10: one record, whole');
syswrite($s, fetch_v4(0, 0, 0, 1048576));
$resp = read_frame($s);
ok(defined $resp && $resp =~ /v0/ && $resp =~ /after the gap/, '... with 1 MB: all of them');
close $s;
my $lso = $node->safe_psql('postgres', q{SELECT last_stable_offset FROM pgtopic.partitions WHERE topic = 'kc' AND "partition" = 0});
$s = connect_raw();
my $t_start = time;
syswrite($s, fetch_v4(0, $lso, 2000));
$resp = read_frame($s);
my $waited = time - $t_start;
ok(defined $resp && $waited >= 1 && $waited <= 5, "a Fetch at the end waits max_wait_ms (2 s; took ${waited} s)");
$t_start = time;
syswrite($s, fetch_v4(0, $lso, 8000));
sleep 1;
$node->safe_psql('postgres', q{SELECT pgtopic.produce('kc', 'woken'::text, partition => 0)});
$resp = read_frame($s);
$waited = time - $t_start;
ok(defined $resp && $resp =~ /woken/ && $waited <= 4,
    "a waiting Fetch is answered when a producer commits (took ${waited} s of max_wait_ms 8 s)");
syswrite($s, frame(header(18, 0, 78)));
ok(defined read_frame($s), '... and the connection serves the next request');
close $s;
# More than 1,000 partitions in one Fetch: closed (each costs SQL run by the event loop).
closed_after(frame(header(1, 4, 79) . pack('N N N N c', 0xffffffff, 0, 1, 1048576, 1) . pack('N', 1)
        . pack('n', 2) . 'kc' . pack('N', 1001) . (pack('N', 0) . pack('q>', 0) . pack('N', 1024)) x 1001),
    'a Fetch of 1,001 partitions closes the connection');
ok(!$node->log_contains('terminated by signal'), 'no process died of a signal');

# ---- ListOffsets ------------------------------------------------------------------------------
$node->safe_psql('postgres', q{
    SELECT pgtopic.produce('orders', 'a'::text, partition => 1);
    SELECT pgtopic.produce('orders', 'b'::text, partition => 1);
    SELECT pgtopic.produce('orders', 'c'::text, partition => 1);
});
my $open = $node->background_psql('postgres');
$open->query_safe(q{BEGIN; SELECT pgtopic.produce('orders', 'held'::text, partition => 1)});

sub list_offsets
{
    my ($version, $partition, $timestamp) = @_;
    my $s = connect_raw();
    my $body = pack('N', 0xffffffff) . ($version >= 2 ? "\x01" : '') . pack('N', 1) . pack('n', 6) . 'orders'
      . pack('N', 1) . pack('N', $partition) . pack('q>', $timestamp);
    syswrite($s, frame(header(2, $version, 9) . $body));
    my $resp = read_frame($s);
    close $s;
    my $at = 4 + ($version >= 2 ? 4 : 0) + 4 + 2 + 6 + 4;
    my ($p, $err, $ts, $off) = unpack('N s> q> q>', substr($resp, $at));
    return [ $p, $err, $ts, $off ];
}
is_deeply(list_offsets(1, 1, -2), [ 1, 0, -1, 0 ], 'ListOffsets v1 earliest: the log start offset');
is_deeply(list_offsets(2, 1, -1), [ 1, 0, -1, 3 ],
    'ListOffsets v2 latest: the last stable offset, below the open transaction');
is(list_offsets(2, 7, -1)->[1], 3, 'an unknown partition: UNKNOWN_TOPIC_OR_PARTITION');
my $r = list_offsets(2, 1, 1000);
is($r->[3], 0, 'a time before every message: offset 0');
ok($r->[2] > 1000, '... with that message\'s timestamp');
is_deeply(list_offsets(2, 1, 4102444800000), [ 1, 0, -1, -1 ], 'a time after every message: -1, as Kafka');
my ($q) = run_command([ 'kcat', '-Q', '-b', $broker, '-t', 'orders:1:1000' ]);
like($q, qr/orders \[1\] offset 0/, 'kcat -Q gives the offset for a time');
$open->query_safe('ROLLBACK');
$open->quit;

# ---- CreateTopics / DeleteTopics -------------------------------------------------------------
sub create_topic
{
    my ($name, $partitions, $rf, $validate_only, $configs) = @_;
    $configs //= [];
    my $s = connect_raw();
    my $body = pack('N', 1) . pack('n', length $name) . $name . pack('N', $partitions) . pack('n', $rf & 0xffff)
      . pack('N', 0) . pack('N', scalar @$configs);
    $body .= pack('n', length $_->[0]) . $_->[0] . pack('n', length $_->[1]) . $_->[1] for @$configs;
    $body .= pack('N', 5000) . ($validate_only ? "\x01" : "\x00");
    syswrite($s, frame(header(19, 4, 11) . $body));
    my $resp = read_frame($s);
    close $s;
    my $len = unpack('n', substr($resp, 12, 2));
    return unpack('s>', substr($resp, 14 + $len, 2));
}

sub delete_topic
{
    my ($name) = @_;
    my $s = connect_raw();
    syswrite($s, frame(header(20, 1, 12) . pack('N', 1) . pack('n', length $name) . $name . pack('N', 5000)));
    my $resp = read_frame($s);
    close $s;
    my $len = unpack('n', substr($resp, 12, 2));
    return unpack('s>', substr($resp, 14 + $len, 2));
}

is(create_topic('fresh', 2, -1, 0), 29, 'CreateTopics without pgtopic_admin: TOPIC_AUTHORIZATION_FAILED');
$node->safe_psql('postgres', 'GRANT pgtopic_admin TO kafka_client');
is(create_topic('dry', 2, 1, 1), 0, 'CreateTopics validate_only succeeds');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.topics WHERE topic = 'dry'}), 0,
    '... and creates nothing');
is(create_topic('fresh', 2, -1, 0, [ [ 'retention.ms', '3600000' ] ]), 0, 'CreateTopics creates a topic');
is($node->safe_psql('postgres', q{SELECT partitions || ' ' || retention FROM pgtopic.topics WHERE topic = 'fresh'}),
    '2 01:00:00', '... with its partitions and retention.ms');
is(create_topic('fresh', 2, -1, 0), 36, 'again: TOPIC_ALREADY_EXISTS');
is(create_topic('bad name', 1, -1, 0), 17, 'an invalid name: INVALID_TOPIC_EXCEPTION');
is(create_topic('x3', 1, 3, 0), 38, 'replication factor 3: INVALID_REPLICATION_FACTOR');
is(create_topic('x0', 0, -1, 0), 37, '0 partitions: INVALID_PARTITIONS');
is(create_topic('xc', 1, -1, 0, [ [ 'cleanup.policy', 'compact' ] ]), 40, 'an unsupported config: INVALID_CONFIG');
# Metadata auto-creation (pgtopic.kafka_auto_create_partitions), v4 with allow_auto_topic_creation.
sub metadata_one
{
    my ($name, $allow) = @_;
    my $s = connect_raw();
    syswrite($s, frame(header(3, 4, 13) . pack('N', 1) . pack('n', length $name) . $name . ($allow ? "\x01" : "\x00")));
    my $resp = read_frame($s);
    close $s;
    my $at = 8;
    my $brokers = unpack('N', substr($resp, $at, 4));
    $at += 4;
    for (1 .. $brokers)
    {
        $at += 4;
        $at += 2 + unpack('n', substr($resp, $at, 2));    # host
        $at += 4;
        my $rack = unpack('s>', substr($resp, $at, 2));
        $at += 2 + ($rack > 0 ? $rack : 0);
    }
    my $cluster = unpack('s>', substr($resp, $at, 2));
    $at += 2 + ($cluster > 0 ? $cluster : 0) + 4 + 4;    # cluster id, controller, topic count
    my $err = unpack('s>', substr($resp, $at, 2));
    $at += 2;
    $at += 2 + unpack('n', substr($resp, $at, 2)) + 1;   # name, is_internal
    my $partitions = unpack('N', substr($resp, $at, 4));
    return [ $err, $partitions ];
}
is_deeply(metadata_one('auto1', 1), [ 3, 0 ], 'auto-creation off: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION');
$node->append_conf('postgresql.conf', "pgtopic.kafka_auto_create_partitions = 3\n");
$node->reload;
sleep 1;
is_deeply(metadata_one('auto1', 0), [ 3, 0 ], 'auto-creation on, but the request does not allow it');
is_deeply(metadata_one('auto1', 1), [ 0, 3 ], 'auto-creation on: Metadata creates the topic with 3 partitions');
is($node->safe_psql('postgres', q{SELECT partitions FROM pgtopic.topics WHERE topic = 'auto1'}), 3,
    '... which SQL sees');
is(delete_topic('auto1'), 0, '... and DeleteTopics drops');
$node->append_conf('postgresql.conf', "pgtopic.kafka_auto_create_partitions = 0\n");
$node->reload;

my ($fresh) = kcat_metadata('-t', 'fresh');
is(scalar @{ $fresh->{topics}[0]{partitions} }, 2, 'kcat -L sees the new topic');
is(delete_topic('fresh'), 0, 'DeleteTopics drops it');
is(delete_topic('fresh'), 3, 'again: UNKNOWN_TOPIC_OR_PARTITION');
$node->safe_psql('postgres', 'REVOKE pgtopic_admin FROM kafka_client');
is(delete_topic('orders'), 29, 'without the admin right: TOPIC_AUTHORIZATION_FAILED');

# ---- a standby serves no Kafka clients until it is promoted ---------------------------------
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('kafka_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf', "pgtopic.kafka_port = $kport_standby\n");
$standby->start;
$node->wait_for_catchup($standby);
sleep 2;
my $refused = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $kport_standby, Proto => 'tcp', Timeout => 2);
ok(!defined $refused, 'no Kafka listener on a standby');
ok(!$standby->log_contains('pgtopic kafka: listening'), '... and none started');
$standby->promote;
my ($promoted) = kcat_metadata('-b', "127.0.0.1:$kport_standby");
is_deeply([ sort map { $_->{topic} } @{ $promoted->{topics} } ], [ 'audit', 'kc', 'kfid', 'orders' ],
    'after promotion the listener serves the same topics');
ok(!$standby->log_contains('terminated by signal'), 'no process on the standby died of a signal');
$standby->stop;

# ---- synchronous replication: a Produce whose wait for the standby is cut short is not acknowledged
$node->append_conf('postgresql.conf', "synchronous_standby_names = 'nobody'\n");
$node->reload;
sleep 1;
my ($sync_out, $sync_err) = ('', '');
# (bash feeds kcat's stdin: IPC::Run would feed it only while we pump)
my $sync = IPC::Run::start([ 'bash', '-c', "printf 'unreplicated\\n' | kcat -b $broker -P -t kc -p 0 -X acks=all "
        . "-X message.timeout.ms=4000 -X message.send.max.retries=0" ],
    '>', \$sync_out, '2>', \$sync_err);
my $in_syncrep = 0;
for (1 .. 100)
{
    my $w = $node->safe_psql('postgres', q{SELECT coalesce(wait_event, '-') FROM pg_stat_activity
        WHERE backend_type = 'pgtopic kafka listener'});
    $in_syncrep = $w eq 'SyncRep';
    last if $in_syncrep;
    select(undef, undef, undef, 0.1);
}
ok($in_syncrep, 'with synchronous_standby_names set and no standby, a Produce (acks=all) waits for it');
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
    WHERE backend_type = 'pgtopic kafka listener'});
$sync->finish;
diag($sync_err) unless $in_syncrep;
ok($node->log_contains('its wait for synchronous replication was cut short') && $sync_err =~ /Disconnected/,
    'a Produce (acks=all) whose synchronous replication wait was cancelled is not acknowledged (connection closed)')
  or diag($sync_err);
$node->append_conf('postgresql.conf', "synchronous_standby_names = ''\n");
$node->reload;
sleep 1;
($md) = kcat_metadata();
ok(defined $md, '... and the listener goes on serving');

# ---- idle connections are closed after pgtopic.kafka_idle_timeout -----------------------------
$node->append_conf('postgresql.conf', "pgtopic.kafka_idle_timeout = '1s'\n");
$node->reload;
sleep 1;
my $idle = connect_raw();
syswrite($idle, frame(header(18, 0, 21)));
ok(defined read_frame($idle), 'a connection is served');
my $t0 = time;
ok(!defined read_frame($idle), 'then closed once idle for kafka_idle_timeout');
ok(time - $t0 <= 5, '... within a few seconds');
close $idle;

# ---- a superuser as pgtopic.kafka_role: the listener refuses to start ------------------------
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
$node->append_conf('postgresql.conf', "pgtopic.kafka_role = '$superuser'\n");
$node->restart;
$node->poll_query_until('postgres', q{SELECT true})
  or die 'restart';
sleep 2;
ok($node->log_contains('is a superuser; the listener does not start'), 'a superuser kafka_role is refused');
ok(!defined IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $kport, Proto => 'tcp', Timeout => 2),
    '... and no Kafka port is open');

$node->stop;
done_testing();
