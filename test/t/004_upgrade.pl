# ALTER EXTENSION pgtopic UPDATE: install 0.1.0, fill it (topics, messages, a consumer group
# with committed offsets, per-topic grants), update to the current version, and show data,
# offsets and groups intact, the new feature working, and the upgraded schema identical to a
# fresh install of the current version.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pgtopic'\npgtopic.maintenance_worker = off\n");
$node->start;

$node->safe_psql('postgres', q{
    CREATE DATABASE upgraded;
    CREATE DATABASE fresh;
});
$node->safe_psql('upgraded', q{
    CREATE EXTENSION pgtopic VERSION '0.1.0';
    SELECT pgtopic.create_topic('orders', 3, segment_size => 50);
    SELECT pgtopic.produce_batch('orders', array_agg('m' || i), array_agg('k' || (i % 7))) FROM generate_series(1, 200) AS i;
    SELECT count(*) FROM pgtopic.consume('orders', 'billing', 120);
    SELECT pgtopic.commit('orders', 'billing');
    CREATE ROLE upgrade_reader IN ROLE pgtopic_consumer;
    SELECT pgtopic.grant_topic('orders', 'upgrade_reader', 'consume');
});
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'pgtopic'}), '0.1.0',
   'version 0.1.0 installed');

my $state = q{
    SELECT string_agg(format('%s:%s:%s', "partition", high_watermark, last_stable_offset), ' ' ORDER BY "partition") FROM pgtopic.partitions;
};
my $messages = q{
    SELECT md5(string_agg(format('%s/%s/%s/%s', f."partition", f.msg_offset, f.key, encode(f.value, 'hex')), ',' ORDER BY 1))
      FROM generate_series(0, 2) AS p, LATERAL pgtopic.fetch('orders', p, 0, 1000) AS f;
};
my $offsets = q{
    SELECT string_agg(format('%s=%s', "partition", committed_offset), ' ' ORDER BY "partition") FROM pgtopic.consumer_lag;
};
my @before = map { $node->safe_psql('upgraded', $_) } ($state, $messages, $offsets);

$node->safe_psql('upgraded', 'ALTER EXTENSION pgtopic UPDATE');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'pgtopic'}), '0.3.0',
   'updated to 0.3.0 (through 0.2.0)');

my @after = map { $node->safe_psql('upgraded', $_) } ($state, $messages, $offsets);
is($after[0], $before[0], 'high watermarks and last stable offsets unchanged');
is($after[1], $before[1], 'every message unchanged');
is($after[2], $before[2], 'committed group offsets unchanged');
is($node->safe_psql('upgraded', q{SELECT count(*) FROM pgtopic.consume('orders', 'billing', 1000)}),
   200 - 120, 'the group continues from its committed offsets');
is($node->safe_psql('upgraded', q{SET ROLE upgrade_reader; SELECT (SELECT count(*) FROM pgtopic.fetch('orders', 0, 0, 1000)) > 0}),
   't', 'per-topic grants survive');

# the 0.2.0 feature: a per-topic message size limit
$node->safe_psql('upgraded', q{SELECT pgtopic.alter_topic('orders', max_message_bytes => 10)});
my ($rc, $out, $err) = $node->psql('upgraded', q{SELECT pgtopic.produce('orders', repeat('x', 11))});
like($err, qr/exceeds the topic's max_message_bytes \(10\)/, 'the new max_message_bytes works after the update');
my ($hw0) = $before[0] =~ /^0:(\d+):/;
is($node->safe_psql('upgraded', q{SELECT (pgtopic.produce('orders', 'short', partition => 0)).msg_offset}),
   $hw0, 'new offsets continue where the log ended');
# A partition loaded into shared memory before the update (produced to above) reserves its
# offsets durably from now on, without a restart.
$node->safe_psql('upgraded', q{SELECT pgtopic.produce('orders', 'u', partition => 0)});
cmp_ok($node->safe_psql('upgraded', q{SELECT reserved_offset FROM pgtopic.catalog_partitions p JOIN pgtopic.catalog_topics t USING (topic_id)
                                       WHERE t.topic = 'orders' AND p."partition" = 0}),
       '>', $hw0 + 1, 'a partition loaded before the update gets a durable reservation');

# 0.3.0's storage: the old topic's tables (and the segments created after the update) gain the
# record columns; a record with a binary key and duplicate headers is stored byte for byte.
$node->safe_psql('upgraded', q{
    SELECT pgtopic.alter_topic('orders', max_message_bytes => 1048576);
    SELECT pgtopic.produce_record('orders', '\x00'::bytea, key => '\xff00'::bytea,
                                  header_keys => ARRAY['a', 'a'], header_values => ARRAY['\x01'::bytea, NULL],
                                  "partition" => 1, created_at => '2026-01-01 00:00:00+00');
    SELECT pgtopic.produce_batch('orders', array_agg('n' || i)) FROM generate_series(1, 150) AS i;
});
is($node->safe_psql('upgraded', q{
    SELECT format('%s|%s|%s|%s|%s', key, value, header_keys, header_values, created_at = '2026-01-01 00:00:00+00')
      FROM pgtopic.fetch_records('orders', 1, 0, 1000) WHERE key = '\xff00'}),
   q{\xff00|\x00|{a,a}|{"\\\\x01",NULL}|t}, 'after the update a record is stored byte for byte in an old topic');
is($node->safe_psql('upgraded', q{
    SELECT string_agg(DISTINCT cols, ' / ') FROM (
      SELECT c.relname, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) AS cols
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       WHERE c.relnamespace = 'pgtopic_data'::regnamespace AND c.relkind IN ('r', 'p') GROUP BY c.relname) s}),
   'partition integer, msg_offset bigint, key text, value bytea, headers jsonb, produced_at timestamp with time zone, '
   . 'created_at timestamp with time zone, key_bytes bytea, header_keys text[], header_values bytea[]',
   'every table and segment of the old topic (also those created since) has the 0.3.0 columns');
is($node->safe_psql('upgraded', q{SELECT count(*) FROM generate_series(0, 2) p, pgtopic.fetch_records('orders', p, 0, 1000)}),
   '353', 'fetch_records reads the old messages and the new ones');

# the upgraded schema is the same as a fresh install
$node->safe_psql('fresh', 'CREATE EXTENSION pgtopic');
my $schema = q{
    SELECT string_agg(x, E'\n' ORDER BY x) FROM (
      SELECT format('function %s %s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proconfig, p.proacl) AS x
        FROM pg_proc p WHERE p.pronamespace = 'pgtopic'::regnamespace
      UNION ALL
      SELECT format('column %s.%s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = 'pgtopic'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL
      SELECT format('relation %s %s %s', c.relname, c.relkind, c.relacl) FROM pg_class c WHERE c.relnamespace = 'pgtopic'::regnamespace
      UNION ALL
      SELECT format('view %s %s', c.relname, md5(pg_get_viewdef(c.oid))) FROM pg_class c
       WHERE c.relnamespace = 'pgtopic'::regnamespace AND c.relkind = 'v'
      UNION ALL
      SELECT format('constraint %s %s', conrelid::regclass, pg_get_constraintdef(oid)) FROM pg_constraint
       WHERE connamespace = 'pgtopic'::regnamespace
    ) s
};
my $upgraded_schema = $node->safe_psql('upgraded', $schema);
my $fresh_schema = $node->safe_psql('fresh', $schema);
is($upgraded_schema, $fresh_schema, 'the upgraded schema is identical to a fresh install');
if ($upgraded_schema ne $fresh_schema) {
    my %f = map { $_ => 1 } split /\n/, $fresh_schema;
    my %u = map { $_ => 1 } split /\n/, $upgraded_schema;
    diag "only after upgrade: $_" for grep { !$f{$_} } sort keys %u;
    diag "only in fresh:      $_" for grep { !$u{$_} } sort keys %f;
}

$node->stop;
done_testing();
