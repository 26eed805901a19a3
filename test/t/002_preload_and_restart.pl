# pgtopic requires shared_preload_libraries: without it CREATE EXTENSION fails with a clear
# message and hint and leaves nothing behind. With it, offsets survive a clean restart: the log
# resumes at the durable reservation (catalog_partitions.reserved_offset), above every offset
# handed out before, as a sequence resumes after its cache.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->start;

my ($ret, $stdout, $stderr) = $node->psql('postgres', 'CREATE EXTENSION pgtopic');
isnt($ret, 0, 'CREATE EXTENSION fails when pgtopic is not preloaded');
like($stderr, qr/pgtopic must be loaded via shared_preload_libraries/, 'the error says why');
like($stderr, qr/HINT:.*shared_preload_libraries/, 'the hint says how');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'pgtopic'"),
   '0', 'no extension is left half-created');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgtopic%'"),
   '0', 'no schema is left behind');

$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pgtopic'");
$node->restart;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('restart', 2);
    SELECT pgtopic.produce_batch('restart', array_agg('m' || i), array_agg('k' || (i % 5)))
      FROM generate_series(1, 50) AS i;
});
my $before = $node->safe_psql('postgres',
    q{SELECT string_agg(high_watermark::text, ',' ORDER BY "partition") FROM pgtopic.partitions});

$node->restart;

my $reserved = $node->safe_psql('postgres',
    q{SELECT string_agg(reserved_offset::text, ',' ORDER BY "partition") FROM pgtopic.catalog_partitions});
my $after = $node->safe_psql('postgres',
    q{SELECT string_agg(high_watermark::text, ',' ORDER BY "partition") FROM pgtopic.partitions});
is($after, $reserved, 'high watermarks resume at the durable reservation after a restart');
my @b = split /,/, $before;
my @a = split /,/, $after;
ok($a[0] >= $b[0] && $a[1] >= $b[1], "the log end never goes back ($before -> $after)");
my $next = $node->safe_psql('postgres',
    q{SELECT string_agg(p.msg_offset::text, ',' ORDER BY p."partition")
        FROM generate_series(0, 1) AS n, LATERAL pgtopic.produce('restart', 'after', partition => n) AS p});
is($next, $after, 'the first offsets after the restart continue at the log end');
is($node->safe_psql('postgres',
    q{SELECT count(*) FROM generate_series(0, 1) AS n, LATERAL pgtopic.fetch('restart', n, 0, 1000)}),
   '52', 'every message is readable after the restart');

$node->stop;
done_testing();
