# Producers never wait for segment DDL (issue 13): with no free background-worker slot
# (max_worker_processes = 2: the maintenance worker and the logical replication launcher take
# both), 4 keyed producers on 8 partitions with segments of 20 offsets keep committing: the
# always-running maintenance worker creates segments ahead of need on request, and a producer
# that finds its segment missing waits at most 200 ms before creating it itself. Before, the
# fallback chained 10 s waits and DDL locks: a median produce_batch of 20 s, 2 commits in 40 s.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep time);

my $SECS = $ENV{PGTOPIC_AHEAD_SECS} // 20;

my $node = PostgreSQL::Test::Cluster->new('ahead');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgtopic'
max_worker_processes = 2
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('tiny', 8, segment_size => 20);
});
is($node->safe_psql('postgres',
       q{SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pgtopic maintenance', 'logical replication launcher')}),
   '2', 'both worker slots are taken');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $script = "$dir/produce.sql";
PostgreSQL::Test::Utils::append_to_file($script, q{
SELECT pgtopic.produce_batch('tiny', array_agg('v' || i), array_agg('k' || (random() * 1000)::int))
  FROM generate_series(1, 10) AS i;
});
my ($out, $err) = ('', '');
my $t0 = time;
my $bench = IPC::Run::start(
    [ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', $SECS, '-f', $script, '-l', '--log-prefix', "$dir/lat",
      '-h', $node->host, '-p', $node->port, 'postgres' ],
    '>', \$out, '2>', \$err, IPC::Run::timeout($SECS + 120));

# the LSO of every partition keeps moving
my @sums;
my $stuck = 0;
my %last;
for my $i (1 .. int($SECS / 4))
{
    sleep 4;
    my %lso = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
        q{SELECT "partition", last_stable_offset FROM pgtopic.partitions WHERE topic = 'tiny'});
    for my $p (keys %lso) { $stuck++ if defined $last{$p} && $lso{$p} <= $last{$p}; }
    %last = %lso;
    my $sum = 0;
    $sum += $_ for values %lso;
    push @sums, $sum;
}
$bench->finish;
is($?, 0, 'every produce call returned without error') or diag($err);
is($stuck, 0, 'the LSO of every partition moved in every 4 s interval (' . join(' ', @sums) . ')');

# latencies (pgbench's per-transaction log: the 3rd field is the latency in microseconds)
my @lat;
for my $f (glob "$dir/lat*")
{
    open my $fh, '<', $f or die;
    while (<$fh>) { my @x = split / /; push @lat, $x[2] / 1000.0; }
}
@lat = sort { $a <=> $b } @lat;
my $n = scalar @lat;
cmp_ok($n, '>', 50, "producers committed $n batches in $SECS s");
my ($p50, $p99, $max) = @lat[int($n * 0.5), int($n * 0.99), $n - 1];
cmp_ok($max, '<', 5000, sprintf('no produce_batch took seconds (max %.0f ms)', $max));
my $segments = $node->safe_psql('postgres',
    q{SELECT count(*) FROM pgtopic.catalog_topics t, generate_series(0, 7) AS p, LATERAL pgtopic._segments(t.topic_id, p)
       WHERE t.topic = 'tiny'});
diag(sprintf('%d batches of 10 (%.0f messages/s), latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d segments',
             $n, 10 * $n / $SECS, $p50, $p99, $max, $segments));

$node->stop;
done_testing();
