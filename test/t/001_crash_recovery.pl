# Crash recovery: concurrent producers, SIGKILL, restart. Every committed message is there
# exactly once, no rolled-back or in-flight message is, new offsets continue above every
# committed one in every partition, and producing keeps working. Three rounds: the first kills
# only the postmaster (its backends live on as orphans until their clients go away, and end
# their transactions themselves); the others kill the postmaster and then every process of the
# instance, so transactions in flight end without a commit or abort record, as in a real crash.
#
# Each produce writes an "ack" row in the same transaction, so the committed acks are exactly
# the committed messages (values are unique: 's'/'m'/'b'/'p' + a sequence number; 'r' values
# belong to transactions or subtransactions that always roll back).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Cwd;
use Time::HiRes qw(sleep time);

my $PARTITIONS = 4;
my $ROUNDS     = $ENV{PGTOPIC_CRASH_ROUNDS} // 3;  # scripts/test runs the 20-round campaign
my $LOAD_SECS  = 2;    # load before the SIGKILL
my $SEGMENT    = 500;  # offsets per segment
my $SEGMENTS   = 60;   # segments created up front, per partition

my $t0   = time;
my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pgtopic'\n");
$node->start;

$node->safe_psql('postgres', qq{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('crash', $PARTITIONS, segment_size => $SEGMENT);
    CREATE SEQUENCE vals;
    -- kind: s single produce, m several produces in one transaction, b produce_batch (no offsets
    -- returned), p produce after a rolled-back savepoint, a produce after a restart
    CREATE TABLE acks (partition int, msg_offset bigint, value text NOT NULL, kind text NOT NULL);
});
my $topic_id = $node->safe_psql('postgres',
    q{SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'crash'});
my $storage = "pgtopic_data.topic_$topic_id";
# Every segment the load can need is created now: messages span many segments, but no segment
# DDL runs during the load (concurrent segment creation can fail a produce with "relation
# ... already exists", a separate bug that would only abort pgbench clients here).
$node->safe_psql('postgres', qq{
    SELECT pgtopic._create_segment($topic_id, p, s)
      FROM generate_series(0, $PARTITIONS - 1) AS p, generate_series(1, $SEGMENTS - 1) AS s});

# pgbench scripts, with weights. Values are numbers from the sequence; keys spread them.
my $dir = PostgreSQL::Test::Utils::tempdir;
my %scripts = (
    single => [ 6, q{
SELECT nextval('vals') AS id \gset
WITH p AS (SELECT * FROM pgtopic.produce('crash', 's' || :id, key => 'k' || :id))
INSERT INTO acks SELECT p.partition, p.msg_offset, 's' || :id, 's' FROM p;
} ],
    multi => [ 2, q{
BEGIN;
SELECT nextval('vals') AS id1 \gset
WITH p AS (SELECT * FROM pgtopic.produce('crash', 'm' || :id1, key => 'k' || :id1))
INSERT INTO acks SELECT p.partition, p.msg_offset, 'm' || :id1, 'm' FROM p;
SELECT pg_sleep(0.005);
SELECT nextval('vals') AS id2 \gset
WITH p AS (SELECT * FROM pgtopic.produce('crash', 'm' || :id2, key => 'k' || :id2))
INSERT INTO acks SELECT p.partition, p.msg_offset, 'm' || :id2, 'm' FROM p;
COMMIT;
} ],
    batch => [ 1, q{
WITH v AS (SELECT array_agg('b' || nextval('vals') ORDER BY g) AS a FROM generate_series(1, 20) AS g),
     b AS (SELECT pgtopic.produce_batch('crash', v.a, v.a) AS n FROM v)
INSERT INTO acks (value, kind) SELECT x, 'b' FROM v, b, unnest(v.a) AS x WHERE b.n = 20;
} ],
    rollback => [ 1, q{
BEGIN;
SELECT nextval('vals') AS id \gset
WITH p AS (SELECT * FROM pgtopic.produce('crash', 'r' || :id, key => 'k' || :id))
INSERT INTO acks SELECT p.partition, p.msg_offset, 'r' || :id, 'r' FROM p;
SELECT pg_sleep(0.002);
ROLLBACK;
} ],
    savepoint => [ 1, q{
BEGIN;
SELECT nextval('vals') AS id1 \gset
SAVEPOINT sp;
WITH p AS (SELECT * FROM pgtopic.produce('crash', 'r' || :id1, key => 'k' || :id1))
INSERT INTO acks SELECT p.partition, p.msg_offset, 'r' || :id1, 'r' FROM p;
ROLLBACK TO SAVEPOINT sp;
SELECT nextval('vals') AS id2 \gset
WITH p AS (SELECT * FROM pgtopic.produce('crash', 'p' || :id2, key => 'k' || :id2))
INSERT INTO acks SELECT p.partition, p.msg_offset, 'p' || :id2, 'p' FROM p;
COMMIT;
} ],
);
my @script_args;
for my $name (sort keys %scripts)
{
    my ($weight, $sql) = @{ $scripts{$name} };
    my $file = "$dir/$name.sql";
    PostgreSQL::Test::Utils::append_to_file($file, $sql);
    push @script_args, '-f', "$file\@$weight";
}

# The processes of the instance: the postmaster and every process it started (also orphans of
# a killed postmaster) have the data directory as their working directory (Linux /proc).
my $pgdata = Cwd::abs_path($node->data_dir);
sub instance_pids
{
    my @pids;
    for my $cwd (glob '/proc/[0-9]*/cwd')
    {
        my $target = readlink $cwd;
        push @pids, $cwd =~ m{^/proc/(\d+)/} if defined $target && $target eq $pgdata;
    }
    return @pids;
}

# True while the process exists and is not a zombie.
sub process_running
{
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $line = <$fh>;
    close $fh;
    return defined $line && $line !~ /^\d+ \(.*\) Z /s;
}

sub offsets_by_partition
{
    my ($sql) = @_;
    my %h = map { split /\|/ } split /\n/, $node->safe_psql('postgres', $sql);
    return \%h;
}

my $prev_acks = 0;
# Consumers: two members of group 'cg' polling concurrently (each poll commits the previous).
my $consume_file = "$dir/consume.sql";
PostgreSQL::Test::Utils::append_to_file($consume_file,
    "SELECT count(*) FROM pgtopic.consume('crash', 'cg', 50, 10);\n");
my $committed_sql = q{
    SELECT coalesce(string_agg(o."partition" || '=' || o.committed_offset, ' ' ORDER BY o."partition"), '')
      FROM pgtopic.catalog_offsets o JOIN pgtopic.catalog_groups g USING (group_id)
     WHERE g.group_name = 'cg' AND o.committed_offset IS NOT NULL};
sub committed_map
{
    my %m = map { split /=/ } split / /, $_[0];
    return \%m;
}
my $campaign = { rounds => 0, acks => 0, offsets_checked => 0 };

for my $round (1 .. $ROUNDS)
{
    my ($out, $err) = ('', '');
    my $bench = IPC::Run::start(
        [ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '30', @script_args,
          '-h', $node->host, '-p', $node->port, 'postgres' ],
        '>', \$out, '2>', \$err, IPC::Run::timeout(120));
    my ($cout, $cerr) = ('', '');
    my $consumers = IPC::Run::start(
        [ 'pgbench', '-n', '-c', '2', '-j', '1', '-T', '30', '-f', $consume_file,
          '-h', $node->host, '-p', $node->port, 'postgres' ],
        '>', \$cout, '2>', \$cerr, IPC::Run::timeout(120));
    sleep $LOAD_SECS;

    # A transaction in flight at the crash holds offset $inflight of partition 0, below an
    # offset $above that commits after it.
    my $bg = $node->background_psql('postgres');
    my $inflight = $bg->query_safe(
        "BEGIN; SELECT msg_offset FROM pgtopic.produce('crash', 'r-inflight', partition => 0)");
    my $above = $node->safe_psql('postgres', q{
        WITH v AS (SELECT nextval('vals') AS id),
             p AS (SELECT v.id, p.* FROM v, LATERAL pgtopic.produce('crash', 's' || v.id, key => NULL, partition => 0) AS p)
        INSERT INTO acks SELECT p."partition", p.msg_offset, 's' || p.id, 's' FROM p RETURNING msg_offset});
    cmp_ok($above, '>', $inflight, "round $round: an offset above the in-flight one commits before the crash");

    # A consumer group commits a position past offsets of a rolled-back transaction at the end
    # of a partition (the last stable offset moved over them): offsets 0-2 committed, 3-4
    # rolled back, group position 5. Those offsets must not be handed out again after the crash.
    my $gtopic = "groups$round";
    $node->safe_psql('postgres', qq{
        SELECT pgtopic.create_topic('$gtopic', 1);
        SELECT pgtopic.produce_batch('$gtopic', ARRAY['g0', 'g1', 'g2']);
        BEGIN;
        SELECT pgtopic.produce_batch('$gtopic', ARRAY['rolled back 3', 'rolled back 4']);
        ROLLBACK;
    });
    is($node->safe_psql('postgres', qq{
        SELECT string_agg(convert_from(value, 'UTF8'), ',' ORDER BY msg_offset) FROM pgtopic.consume('$gtopic', 'g', 100);
        SELECT pgtopic.commit('$gtopic', 'g');
        SELECT o.committed_offset FROM pgtopic.catalog_offsets o JOIN pgtopic.catalog_groups g USING (group_id)
         WHERE g.group_name = 'g' AND g.topic_id = (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = '$gtopic');
    }), "g0,g1,g2\n\n5", "round $round: a group consumed offsets 0-2 and committed position 5, past the rolled-back 3-4");

    # committed group offsets just before the crash: they must never go backwards
    my $committed_before = committed_map($node->safe_psql('postgres', $committed_sql));

    my $mode = $round % 2 == 1 ? 'postmaster' : 'instance';
    my $before     = scalar(instance_pids());
    my $postmaster = $node->{_pid};
    $node->kill9;
    if ($mode eq 'instance')
    {
        # The postmaster dies first, so that no postmaster sees (and logs) a child killed by a
        # signal; then every other process, also whatever it started just before it died.
        my $until = time + 10;
        sleep 0.001 while time < $until && process_running($postmaster);
        for (1 .. 20)
        {
            my @pids = instance_pids() or last;
            kill 'KILL', @pids;
            sleep 0.01;
        }
    }
    else
    {
        # Orphaned backends keep serving their clients until a wait notices the postmaster's
        # death; let them run a moment, then take their clients away.
        sleep 0.2;
    }
    $bench->signal('KILL');
    eval { $bench->finish; };
    $consumers->signal('KILL');
    eval { $consumers->finish; };
    eval { $bg->quit; };
    # A new postmaster refuses to start while processes of the old one hold its shared memory,
    # or while the old postmaster's PID exists (also as a zombie not yet reaped).
    my $deadline = time + 60;
    my $alive = sub { scalar(instance_pids()) + (kill(0, $postmaster) ? 1 : 0) };
    sleep 0.05 while time < $deadline && $alive->();
    is($alive->(), 0, "round $round: SIGKILL of the $mode: all $before processes of the instance are gone");
    unlike($err, qr/ERROR:/, "round $round: no pgbench client failed with an error before the crash")
      or diag($err);

    my $log_offset = -s $node->logfile;
    $node->start;
    my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_offset);
    like($log, qr/database system was (not properly shut down|interrupted)/,
        "round $round: the restart ran crash recovery");
    ok($node->poll_query_until('postgres',
            q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pgtopic maintenance'}),
        "round $round: the maintenance worker is back");
    my $committed_after = committed_map($node->safe_psql('postgres', $committed_sql));
    my @backwards = grep { ($committed_after->{$_} // -1) < $committed_before->{$_} } sort keys %$committed_before;
    is("@backwards", '', "round $round: committed group offsets did not go backwards ("
        . join(' ', map { "$_=" . ($committed_after->{$_} // 'none') } sort keys %$committed_after) . ')');
    $campaign->{offsets_checked} += scalar keys %$committed_before;

    # (1) every committed message exactly once, nothing else. Read through pgtopic.fetch (the
    # reading API, bounded by the last stable offset) and through the storage table.
    $node->safe_psql('postgres', qq{
        SET pgtopic.max_poll_messages = 100000000;  -- read everything in one call
        DROP TABLE IF EXISTS fetched;
        CREATE TABLE fetched AS
        SELECT f."partition", f.msg_offset, f.key, convert_from(f.value, 'UTF8') AS value
          FROM generate_series(0, $PARTITIONS - 1) AS n, LATERAL pgtopic.fetch('crash', n, 0, 100000000) AS f;
    });
    my $check = sub {
        my ($sql, $expected, $name) = @_;
        is($node->safe_psql('postgres', $sql), $expected, "round $round: $name");
    };
    my $acks = $node->safe_psql('postgres', 'SELECT count(*) FROM acks');
    my $kinds = $node->safe_psql('postgres',
        q{SELECT string_agg(kind || '=' || c, ' ' ORDER BY kind) FROM (SELECT kind, count(*) AS c FROM acks GROUP BY kind) k});
    cmp_ok($acks, '>', $prev_acks + 50, "round $round: producers committed messages before the crash");
    $check->(q{SELECT count(*) FROM acks WHERE kind = 'r'}, '0', 'rolled-back acks are gone');
    $check->("SELECT count(*) FROM $storage", $acks, 'the storage holds as many messages as committed acks');
    $check->(q{
        WITH s AS (SELECT "partition" AS p, msg_offset AS o, key AS k, value AS v FROM fetched),
             a AS (SELECT "partition" AS p, msg_offset AS o, value AS v FROM acks)
        SELECT count(*) FILTER (WHERE s.v IS NULL) || ' missing, ' || count(*) FILTER (WHERE a.v IS NULL) || ' unacked, '
            || count(*) FILTER (WHERE s.v IS NOT NULL AND a.v IS NOT NULL AND a.o IS NOT NULL AND (s.p, s.o) <> (a.p, a.o)) || ' moved'
          FROM s FULL JOIN a ON s.v = a.v
    }, '0 missing, 0 unacked, 0 moved',
       'fetch returns every committed message at its acknowledged partition and offset, and nothing else');
    $check->(q{SELECT count(*) - count(DISTINCT value) FROM fetched}, '0', 'no message value twice');
    $check->(q{SELECT count(*) - count(DISTINCT ("partition", msg_offset)) FROM fetched}, '0', 'no offset twice');
    $check->(q{SELECT count(*) - count(DISTINCT ("partition", msg_offset)) FROM acks WHERE msg_offset IS NOT NULL},
        '0', 'no offset acknowledged twice');
    $check->(q{SELECT count(*) FROM fetched WHERE value LIKE 'r%'}, '0', 'no rolled-back message is readable');
    $check->("SELECT count(*) FROM $storage WHERE convert_from(value, 'UTF8') LIKE 'r%'", '0',
        'no rolled-back message is stored');
    $check->("SELECT count(*) FROM $storage WHERE \"partition\" = 0 AND msg_offset = $inflight", '0',
        "offset $inflight of partition 0, in flight at the crash, holds nothing");
    $check->("SELECT count(*) FROM fetched WHERE \"partition\" = 0 AND msg_offset = $above", '1',
        "offset $above of partition 0, committed above it, is readable");
    $check->(qq{SELECT count(*) FROM fetched WHERE key IS NOT NULL AND "partition" <> pgtopic.key_partition(key, $PARTITIONS)}, '0',
        'every message is in its key\'s partition');
    $check->(qq{
        SELECT count(*) FROM fetched f FULL JOIN $storage s USING ("partition", msg_offset)
         WHERE f.value IS DISTINCT FROM convert_from(s.value, 'UTF8')
    }, '0', 'fetch and the storage table agree');

    # (2) the offsets after the restart: high watermark = max + 1, and new offsets above it.
    my $max = offsets_by_partition(qq{
        SELECT n, coalesce(max(msg_offset), -1) FROM generate_series(0, $PARTITIONS - 1) AS n
          LEFT JOIN $storage s ON s."partition" = n GROUP BY n});
    my $max_ack = offsets_by_partition(qq{
        SELECT n, coalesce(max(msg_offset), -1) FROM generate_series(0, $PARTITIONS - 1) AS n
          LEFT JOIN acks a ON a."partition" = n GROUP BY n});
    # the restart point also respects the highest committed group offset (a group may have
    # committed a position past rolled-back offsets at the end of the log) and the durable
    # reservation (offsets handed out before the crash, even to transactions that rolled back)
    my $floor = offsets_by_partition(qq{
        SELECT n, greatest(coalesce(max(s.msg_offset), -1) + 1,
                           coalesce((SELECT max(o.committed_offset) FROM pgtopic.catalog_offsets o
                                       JOIN pgtopic.catalog_groups g USING (group_id)
                                      WHERE g.topic_id = $topic_id AND o."partition" = n), 0),
                           (SELECT b.reserved_offset FROM pgtopic.catalog_partitions b
                             WHERE b.topic_id = $topic_id AND b."partition" = n))
          FROM generate_series(0, $PARTITIONS - 1) AS n
          LEFT JOIN $storage s ON s."partition" = n GROUP BY n});
    my $hw = offsets_by_partition(
        q{SELECT "partition", high_watermark || ',' || last_stable_offset FROM pgtopic.partitions WHERE topic = 'crash'});
    my $next = offsets_by_partition(qq{
        WITH v AS (SELECT n, 'a' || nextval('vals') AS val FROM generate_series(0, $PARTITIONS - 1) AS n),
             p AS (SELECT v.val, p.* FROM v, LATERAL pgtopic.produce('crash', v.val, partition => v.n) AS p)
        INSERT INTO acks SELECT p."partition", p.msg_offset, p.val, 'a' FROM p
        RETURNING "partition", msg_offset});
    for my $p (0 .. $PARTITIONS - 1)
    {
        cmp_ok($max->{$p}, '>=', $max_ack->{$p}, "round $round: partition $p holds its highest acknowledged offset");
        is($hw->{$p}, $floor->{$p} . ',' . $floor->{$p},
            "round $round: partition $p high watermark and last stable offset are max(max + 1, committed group offset, reservation) after the restart");
        cmp_ok($next->{$p}, '>', $max->{$p}, "round $round: partition $p new offset is above every committed one");
        is($next->{$p}, $floor->{$p}, "round $round: partition $p continues at max(max + 1, committed group offset, reservation)");
    }

    # The group's committed position bounds the offsets from below too (and so does the
    # reservation, which covers the rolled-back 3-4 as well).
    my $gfloor = $node->safe_psql('postgres', qq{
        SELECT greatest(5, b.reserved_offset) FROM pgtopic.catalog_partitions b
          JOIN pgtopic.catalog_topics t USING (topic_id) WHERE t.topic = '$gtopic'});
    my $gnext = $node->safe_psql('postgres', qq{SELECT msg_offset FROM pgtopic.produce('$gtopic', 'after the crash')});
    cmp_ok($gnext, '>=', 5, "round $round: after the crash the group's topic continues at or above the committed position 5, not at 3");
    is($gnext, $gfloor, "round $round: ... at max(committed position, reservation)");
    is($node->safe_psql('postgres', qq{
        SELECT string_agg(msg_offset || ':' || convert_from(value, 'UTF8'), ',') FROM pgtopic.consume('$gtopic', 'g', 100)}),
        "$gnext:after the crash", "round $round: the group receives the first message produced after the crash");

    # (3) producing keeps working: one produce and one batch, readable at once.
    my $after = $node->safe_psql('postgres', q{
        WITH v AS (SELECT nextval('vals') AS id),
             p AS (SELECT v.id, p.* FROM v, LATERAL pgtopic.produce('crash', 's' || v.id, key => 'k' || v.id) AS p)
        INSERT INTO acks SELECT p."partition", p.msg_offset, 's' || p.id, 's' FROM p;
        WITH v AS (SELECT array_agg('b' || nextval('vals') ORDER BY g) AS a FROM generate_series(1, 10) AS g),
             b AS (SELECT pgtopic.produce_batch('crash', v.a, v.a) AS n FROM v)
        INSERT INTO acks (value, kind) SELECT x, 'b' FROM v, b, unnest(v.a) AS x;
        SELECT count(*) FROM acks;
    });
    my $readable = $node->safe_psql('postgres', qq{
        SET pgtopic.max_poll_messages = 100000000;
        SELECT count(*) FROM generate_series(0, $PARTITIONS - 1) AS n, LATERAL pgtopic.fetch('crash', n, 0, 100000000)});
    is($readable, $after, "round $round: messages produced after the restart are readable with all the others");

    my $gaps = $node->safe_psql('postgres', qq{
        SELECT sum(hw - c) FROM (SELECT "partition", max(msg_offset) + 1 AS hw, count(*) AS c FROM fetched GROUP BY 1) x});
    diag(sprintf('round %d (SIGKILL of the %s): %d messages committed before the crash, %d in all (%s); '
          . '%d offsets in gaps (rolled back or in flight); logs end at %s',
        $round, $mode, $acks - $prev_acks, $acks, $kinds, $gaps,
        join(',', map { $max->{$_} + 1 } 0 .. $PARTITIONS - 1)));
    $prev_acks = $after;
}

# Killing the postmaster must not make any backend die of a signal.
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
my @signalled = grep { /terminated by signal|terminated by exception|PANIC:|TRAP:/ } split /\n/, $log;
is(scalar(@signalled), 0, 'no backend terminated by a signal, no PANIC') or diag(join("\n", @signalled));

$node->stop;
diag(sprintf('crash recovery test: %d rounds in %.1fs, %d committed group offsets checked for going backwards',
    $ROUNDS, time - $t0, $campaign->{offsets_checked}));
done_testing();
