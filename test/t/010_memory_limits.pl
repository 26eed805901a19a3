# max_poll_bytes counts keys, values and headers as they are returned, and bounds the memory of
# a consumer's backend: a poll over big incompressible keys returns about max_poll_bytes of them
# and the backend's peak RSS grows by a small multiple of it (measured 2-4x, including the shared
# buffers it reads), not by what the partition holds (90 MB here).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('memory');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgtopic'
pgtopic.maintenance_worker = off
});
$node->start;

my $key_bytes = 896_000;    # 28,000 md5 digests: text that pglz cannot compress
my $messages = 100;         # 90 MB of keys in one partition
my $poll_bytes = 8 * 1024 * 1024;
$node->safe_psql('postgres', qq{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('big', 1);
    SELECT pgtopic.produce('big', 'v', key => (SELECT string_agg(md5(i::text || '/' || j::text), '')
                                               FROM generate_series(1, 28000) AS j))
      FROM generate_series(1, $messages) AS i;
});
is($node->safe_psql('postgres', q{SELECT high_watermark FROM pgtopic.partitions WHERE topic = 'big'}),
   $messages, "$messages messages with keys of $key_bytes bytes");

# One session: peak RSS (VmHWM) before and after each poll, read from the backend's own /proc.
my $hwm = q{(SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+([0-9]+) kB')::bigint * 1024)};
my $out = $node->safe_psql('postgres', qq{
    SET pgtopic.max_poll_bytes = $poll_bytes;
    CREATE TEMP TABLE polls AS SELECT 0 AS n, 0::bigint AS rows, 0::bigint AS bytes, $hwm AS hwm;
    INSERT INTO polls SELECT 1, count(*), coalesce(sum(octet_length(key)), 0), 0 FROM pgtopic.consume('big', 'g', 2000);
    UPDATE polls SET hwm = $hwm WHERE n = 1;
    SELECT pgtopic.commit('big', 'g');
    INSERT INTO polls SELECT 2, count(*), coalesce(sum(octet_length(key)), 0), 0 FROM pgtopic.fetch('big', 0, 0, 2000);
    UPDATE polls SET hwm = $hwm WHERE n = 2;
    SELECT string_agg(format('%s %s %s %s', n, rows, bytes, hwm), ';' ORDER BY n) FROM polls;
});
my %poll = map { my @f = split / /; ($f[0] => { rows => $f[1], bytes => $f[2], hwm => $f[3] }) } split /;/, $out;
my $max_rows = int($poll_bytes / $key_bytes) + 1;
for my $n (1, 2) {
    my $what = $n == 1 ? 'consume' : 'fetch';
    cmp_ok($poll{$n}{rows}, '>=', 1, "$what returns at least one message");
    cmp_ok($poll{$n}{rows}, '<=', $max_rows, "$what stops at max_poll_bytes counted in keys ($poll{$n}{rows} rows)");
    cmp_ok($poll{$n}{bytes}, '<=', $poll_bytes + $key_bytes, "$what returns at most max_poll_bytes plus one message");
    my $growth = $poll{$n}{hwm} - $poll{0}{hwm};
    note(sprintf('%s: %d rows, %.1f MB of keys, peak RSS +%.1f MB', $what, $poll{$n}{rows},
                 $poll{$n}{bytes} / 1048576, $growth / 1048576));
    # (peak RSS includes the shared buffers the backend touched: the TOAST pages it read)
    cmp_ok($growth, '<=', 5 * $poll_bytes,
           "the backend's peak RSS grows by at most 5 x max_poll_bytes ($what: " . int($growth / 1048576) . ' MB)');
}

# The group goes on where the first poll stopped (committed): nothing was skipped.
is($node->safe_psql('postgres', q{
    SET pgtopic.max_poll_bytes = 1;
    SELECT min(msg_offset) FROM pgtopic.consume('big', 'g', 2000);
}), $poll{1}{rows}, 'the next poll of the group starts after the last message returned');

# produce_batch: a batch is bounded by max_batch_bytes (messages, keys and headers together), and
# the producer's backend grows by a small multiple of the batch, not more
my $batch_bytes = 16 * 1024 * 1024;
$out = $node->safe_psql('postgres', qq{
    SET pgtopic.max_batch_bytes = $batch_bytes;
    CREATE TEMP TABLE before AS SELECT $hwm AS hwm;
    SELECT pgtopic.produce_batch('big', array_agg(convert_to(repeat(md5(i::text), 28000), 'UTF8')),
                                 array_agg('k' || i)) FROM generate_series(1, 16) AS i;
    SELECT $hwm - hwm FROM before;
});
my ($produced, $grown) = split /\n/, $out;
is($produced, '16', 'produce_batch of 16 messages of 896 kB (14 MB) under max_batch_bytes 16 MB');
note sprintf('produce_batch of 14 MB: peak RSS +%.1f MB', $grown / 1048576);
cmp_ok($grown, '<=', 5 * $batch_bytes, "the producer's peak RSS grows by at most 5 x max_batch_bytes (" . int($grown / 1048576) . ' MB)');
my ($rc, $stdout, $stderr) = $node->psql('postgres', qq{
    SET pgtopic.max_batch_bytes = $batch_bytes;
    SELECT pgtopic.produce_batch('big', array_agg(convert_to(repeat(md5(i::text), 28000), 'UTF8'))) FROM generate_series(1, 20) AS i;
});
like($stderr, qr/arrays of \d+ bytes exceed pgtopic.max_batch_bytes/, 'a batch of 18 MB is refused before it is read');

$node->stop;
done_testing();
