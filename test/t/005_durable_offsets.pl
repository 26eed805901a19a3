# An offset, once handed out, is never handed out again, and the log start never goes back
# (issue 13): after retention dropped every segment and a clean restart or a crash; after
# offsets of rolled-back transactions that readers passed; after a crash during each topic DDL.
# Shared memory is a hard cap (pgtopic.shared_partitions) and a dropped topic gives back all of
# it: create/produce/drop cycles keep working with shared_partitions = 16.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# 100,000 cycles (the issue's figure) are a long run: 1,459 s (14.6 ms a cycle, 2 shared cores), all passing:
# PGTOPIC_CYCLES=100000 prove test/t/005_durable_offsets.pl
my $CYCLES = $ENV{PGTOPIC_CYCLES} // 1500;

my $node = PostgreSQL::Test::Cluster->new('durable');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgtopic'
pgtopic.shared_partitions = 16
# run_maintenance is called by the test, never by a worker racing it
pgtopic.maintenance_worker = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgtopic');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub offsets
{
    my ($topic) = @_;
    return q1(qq{SELECT log_start_offset || ',' || high_watermark || ',' || last_stable_offset
                   FROM pgtopic.partitions WHERE topic = '$topic' AND "partition" = 0});
}

# ---- retention dropped every segment, then a restart, then a crash ------------------------
q1(q{
    SELECT pgtopic.create_topic('ret', segment_size => 10, retention_bytes => 1);
    SELECT pgtopic.produce_batch('ret', array_agg('m' || i)) FROM generate_series(1, 20) AS i;
});
is(q1(q{SELECT count(*) FROM pgtopic.run_maintenance() WHERE topic = 'ret' AND action = 'drop segment'}), '2',
   'retention drops both segments');
is(offsets('ret'), '20,20,20', 'log start, high watermark and LSO are 20');

my $last = 19;
my $start = 20;
my @after;
for my $how ('restart', 'crash')
{
    if ($how eq 'restart') { $node->restart; }
    else { $node->stop('immediate'); $node->start; }
    my ($ls, $hw, $lso) = split /,/, offsets('ret');
    cmp_ok($ls, '>=', $start, "after a $how the log start does not go back ($start -> $ls)");
    cmp_ok($hw, '>', $last, "after a $how the high watermark is above every offset handed out ($hw > $last)");
    my $next = q1(q{SELECT msg_offset FROM pgtopic.produce('ret', 'after')});
    cmp_ok($next, '>', $last, "after a $how the next offset is new ($next > $last)");
    push @after, $next;
    is(q1(qq{SELECT string_agg(msg_offset::text, ',' ORDER BY msg_offset) FROM pgtopic.fetch('ret', 0, 0, 100)}),
       join(',', @after), "after a $how a reader from 0 sees only the messages produced after retention");
    my ($ls2) = split /,/, offsets('ret');
    cmp_ok($ls2, '>=', $ls, "after a $how the new segment does not move the log start back ($ls -> $ls2)");
    $last = $next;
    $start = $ls2;
}

# ---- offsets of a rolled-back transaction that a reader passed -----------------------------
q1(q{SELECT pgtopic.create_topic('rb');
     SELECT msg_offset FROM pgtopic.produce('rb', 'm0');
     BEGIN; SELECT msg_offset FROM pgtopic.produce('rb', 'x'); ROLLBACK;});
is((split /,/, offsets('rb'))[2], '2', 'the LSO passed the rolled-back offset 1');
for my $how ('restart', 'crash')
{
    if ($how eq 'restart') { $node->restart; }
    else { $node->stop('immediate'); $node->start; }
    my $next = q1(q{SELECT msg_offset FROM pgtopic.produce('rb', 'new')});
    cmp_ok($next, '>=', 2, "after a $how the rolled-back offset 1 is not handed out again (next: $next)");
}

# ---- a crash during each DDL ------------------------------------------------------------------
q1(q{SELECT pgtopic.create_topic('ddl', 1);
     SELECT pgtopic.produce_batch('ddl', ARRAY['a', 'b', 'c']);});
my $ddl_last = q1(q{SELECT high_watermark - 1 FROM pgtopic.partitions WHERE topic = 'ddl'});
my %ddl = (
    create => q{SELECT pgtopic.create_topic('ddl-new', 2);
                SELECT count(*) FROM pgtopic.produce('ddl-new', 'in the crashed create', partition => 1);},
    alter  => q{SELECT pgtopic.alter_topic('ddl', partitions => 3);
                SELECT count(*) FROM pgtopic.produce('ddl', 'in the crashed alter', partition => 0);
                SELECT count(*) FROM pgtopic.produce('ddl', 'in a new partition', partition => 2);},
    drop   => q{SELECT count(*) FROM pgtopic.produce('ddl', 'before the crashed drop', partition => 0);
                SELECT pgtopic.drop_topic('ddl');},
);
for my $what ('create', 'alter', 'drop')
{
    my $bg = $node->background_psql('postgres', on_error_stop => 1);
    $bg->query_safe('BEGIN');
    $bg->query_safe($ddl{$what});
    $node->stop('immediate');
    eval { $bg->quit; };
    $node->start;
    is(q1(q{SELECT string_agg(t.topic || ':' || t.partitions || ':' || (SELECT count(*) FROM pgtopic.catalog_partitions b
                                                                          WHERE b.topic_id = t.topic_id), ',' ORDER BY t.topic)
              FROM pgtopic.catalog_topics t WHERE t.topic LIKE 'ddl%'}),
       'ddl:1:1', "a crash during ${what}_topic leaves the catalog as it was");
    is(q1(q{SELECT string_agg(convert_from(value, 'UTF8'), ',' ORDER BY msg_offset) FROM pgtopic.fetch('ddl', 0, 0, 100)}),
       'a,b,c', "a crash during ${what}_topic loses no message and shows none of its transaction");
    my $next = q1(q{SELECT msg_offset FROM pgtopic.produce('ddl', 'after', partition => 0)});
    cmp_ok($next, '>', $ddl_last, "after a crash during ${what}_topic the next offset is new ($next > $ddl_last)");
    $ddl_last = $next;
    # the crashed create left nothing behind: the name is free
    q1(q{SELECT pgtopic.create_topic('ddl-new', 2); SELECT pgtopic.drop_topic('ddl-new');});
    # the next round checks 'a,b,c' again: a fresh topic
    q1(q{SELECT pgtopic.drop_topic('ddl'); SELECT pgtopic.create_topic('ddl', 1);
         SELECT pgtopic.produce_batch('ddl', ARRAY['a', 'b', 'c']);});
    $ddl_last = q1(q{SELECT high_watermark - 1 FROM pgtopic.partitions WHERE topic = 'ddl'});
}

# ---- shared memory: a hard cap, and everything of a dropped topic given back ----------------
q1(q{SELECT pgtopic.drop_topic(topic) FROM pgtopic.catalog_topics});
my ($ret, $out, $err) = $node->psql('postgres', q{
    SELECT pgtopic.create_topic('wide', 20);
    SELECT count(*) FROM generate_series(0, 19) AS p, LATERAL pgtopic.produce('wide', 'x', partition => p);});
isnt($ret, 0, 'a topic with more partitions than pgtopic.shared_partitions cannot produce to all of them');
like($err, qr/pgtopic's shared memory for partitions is full/, 'the error says why');
like($err, qr/HINT:.*pgtopic\.shared_partitions/, 'the hint names the setting');
($ret, $out, $err) = $node->psql('postgres', q{
    \set VERBOSITY verbose
    SELECT count(*) FROM generate_series(0, 19) AS p, LATERAL pgtopic.produce('wide', 'x', partition => p);});
like($err, qr/53400/, 'SQLSTATE 53400 (configuration_limit_exceeded)');
q1(q{SELECT pgtopic.drop_topic('wide')});

q1(q{SELECT pgtopic.create_topic('live', 4);
     SELECT count(*) FROM generate_series(0, 3) AS p, LATERAL pgtopic.produce('live', 'x', partition => p);});
my $t0 = time;
# in calls of at most 500 cycles: a session reports its statistics only between statements,
# and autovacuum needs them to clean up the catalogs the cycles churn
for (my $done = 0; $done < $CYCLES; $done += 500)
{
    my $n = $CYCLES - $done < 500 ? $CYCLES - $done : 500;
    q1(qq{DO \$\$
BEGIN
    FOR i IN 1 .. $n LOOP
        PERFORM pgtopic.create_topic('cycle', 2);
        PERFORM pgtopic.produce('cycle', 'x', partition => 0);
        PERFORM pgtopic.produce('cycle', 'y', partition => 1);
        PERFORM pgtopic.drop_topic('cycle');
        COMMIT;
    END LOOP;
END \$\$});
}
my $secs = time - $t0;
pass("$CYCLES create/produce/drop cycles with pgtopic.shared_partitions = 16");
diag(sprintf('%d create/produce/drop cycles in %.1f s (%.1f ms each)', $CYCLES, $secs, 1000 * $secs / $CYCLES));
# a rolled-back drop keeps the topic's counters; a committed one in a subtransaction frees them
q1(q{SELECT pgtopic.create_topic('cycle', 2); SELECT count(*) FROM pgtopic.produce('cycle', 'x', partition => 0);
     BEGIN; SELECT pgtopic.drop_topic('cycle'); ROLLBACK;
     BEGIN; SAVEPOINT s; SELECT pgtopic.drop_topic('cycle'); ROLLBACK TO SAVEPOINT s; COMMIT;});
is(q1(q{SELECT msg_offset FROM pgtopic.produce('cycle', 'z', partition => 0)}), '1',
   'a rolled-back drop_topic (also in a subtransaction) keeps the counter');
q1(q{BEGIN; SAVEPOINT s; SELECT pgtopic.drop_topic('cycle'); RELEASE SAVEPOINT s; COMMIT;});
is(q1(q{SELECT count(*) FROM generate_series(0, 11) AS p,
              LATERAL (SELECT pgtopic.create_topic('after' || p, 1)) c,
              LATERAL pgtopic.produce('after' || p, 'x')}), '12',
   'the live topic and 12 new partitions fit in the 16 after all the cycles');
is(q1(q{SELECT count(*) FROM generate_series(0, 3) AS p, LATERAL pgtopic.produce('live', 'x', partition => p)}), '4',
   'the live topic keeps working');
# DROP EXTENSION frees every topic's entries too, and the members of its groups in every session
my $member = $node->background_psql('postgres');
$member->query_safe(q{SELECT count(*) FROM pgtopic.consume('live', 'stays-connected', 1)});
is(q1(q{SELECT count(*) FROM pgtopic_internal._members()}), '1', 'a session is a member of a group of the live topic');
q1(q{DROP EXTENSION pgtopic CASCADE; CREATE EXTENSION pgtopic;
     SELECT pgtopic.create_topic('again', 15);
     SELECT count(*) FROM generate_series(0, 14) AS p, LATERAL pgtopic.produce('again', 'x', partition => p);});
pass('after DROP EXTENSION the shared memory is free again');
is(q1(q{SELECT count(*) FROM pgtopic_internal._members()}), '0',
   'and the group coordinator holds no member of the dropped topics (the member session is still connected)');
$member->quit;

# DROP DATABASE frees the entries of every topic in it (the object access hook does not see them)
q1(q{SELECT pgtopic.drop_topic('again')});
for my $round (1 .. 3)
{
    $node->safe_psql('postgres', 'CREATE DATABASE scratch');
    $node->safe_psql('scratch', q{CREATE EXTENSION pgtopic; SELECT pgtopic.create_topic('wide', 10);
                                  SELECT count(*) FROM generate_series(0, 9) AS p, LATERAL pgtopic.produce('wide', 'x', partition => p);});
    $node->safe_psql('postgres', 'DROP DATABASE scratch');
}
pass('three databases of 10 partitions each created, filled and dropped with pgtopic.shared_partitions = 16');
q1(q{SELECT pgtopic.create_topic('again', 15)});
is(q1(q{SELECT count(*) FROM generate_series(0, 14) AS p, LATERAL pgtopic.produce('again', 'y', partition => p)}), '15',
   'after them another database has room for 15 partitions again');

$node->stop;
done_testing();
