# Hot standbys (issue 13): a standby replays commits in commit order, not offset order, so it
# reads only below the primary's last stable offset as the primary WAL-logged it (the
# maintenance worker logs the ones that moved every 200 ms): fetch on a standby never returns an
# offset while a lower one may still appear. produce, consume and topic DDL on a standby fail
# with pgtopic's own message and hint. A standby promoted after retention dropped every segment
# knows the log start and the log end (catalog_partitions is WAL-logged), so no offset is
# handed out twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgtopic'
pgtopic.maintenance_interval = '1h'
});
$primary->start;
$primary->safe_psql('postgres', q{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('sb', 1);
    SELECT pgtopic.create_topic('ret', segment_size => 10, retention_bytes => 1);
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
# synchronous: a reservation waits for the standby as a commit does
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'standby'\n");
$primary->reload;
ok($primary->poll_query_until('postgres', q{SELECT sync_state = 'sync' FROM pg_stat_replication}), 'the standby is synchronous');

sub caught_up { $primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert')); }

# ---- fetch on the standby stops at the primary's last stable offset ---------------------------
my $held = $primary->background_psql('postgres');
is($held->query_safe(q{BEGIN; SELECT msg_offset FROM pgtopic.produce('sb', 'held', partition => 0)}), '0',
   'an open transaction on the primary holds offset 0');
is($primary->safe_psql('postgres', q{SELECT msg_offset FROM pgtopic.produce('sb', 'later', partition => 0)}), '1',
   'offset 1 commits before it');
sleep 1;  # two rounds of the worker's stable-offset logging
caught_up();
is($standby->safe_psql('postgres', q{SELECT high_watermark || ',' || last_stable_offset FROM pgtopic.partitions WHERE topic = 'sb'}),
   '0,0', 'the standby reports the primary\'s last stable offset 0, not 2');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.fetch('sb', 0, 0, 100)}), '0',
   'fetch on the standby does not return offset 1 while offset 0 may still appear');
$held->query_safe('COMMIT');
$held->quit;
ok($standby->poll_query_until('postgres', q{SELECT last_stable_offset = 2 FROM pgtopic.partitions WHERE topic = 'sb'}),
   'once offset 0 commits, the standby\'s last stable offset moves to 2');
is($standby->safe_psql('postgres',
       q{SELECT string_agg(msg_offset || ':' || convert_from(value, 'UTF8'), ',' ORDER BY msg_offset) FROM pgtopic.fetch('sb', 0, 0, 100)}),
   '0:held,1:later', 'and fetch on the standby returns both, in order');

# ---- what a standby cannot do: pgtopic's own message and hint ------------------------------
my %refused = (
    q{SELECT * FROM pgtopic.produce('sb', 'x')}                 => qr/cannot produce to a topic on a standby/,
    q{SELECT pgtopic.produce_batch('sb', ARRAY['x'])}           => qr/cannot produce to a topic on a standby/,
    q{SELECT * FROM pgtopic.consume('sb', 'g')}                 => qr/cannot consume from a group on a standby/,
    q{SELECT pgtopic.commit('sb', 'g')}                         => qr/cannot commit a group's offsets on a standby/,
    q{SELECT pgtopic.seek('sb', 'g', 0, 0)}                     => qr/cannot seek in a group on a standby/,
    q{SELECT pgtopic.leave('sb', 'g')}                          => qr/cannot leave a group on a standby/,
    q{SELECT pgtopic.grant_topic('sb', 'postgres', 'consume')}  => qr/cannot grant a topic right on a standby/,
    q{SELECT pgtopic.create_topic('new')}                       => qr/cannot create a topic on a standby/,
    q{SELECT pgtopic.alter_topic('sb', partitions => 2)}        => qr/cannot alter a topic on a standby/,
    q{SELECT pgtopic.drop_topic('sb')}                          => qr/cannot drop a topic on a standby/,
);
for my $sql (sort keys %refused)
{
    my ($ret, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\n$sql");
    like($err, $refused{$sql}, "on a standby: $sql fails with pgtopic's message");
    like($err, qr/25006/, "... SQLSTATE 25006");
    like($err, qr/HINT:.*primary/, '... and a hint to connect to the primary');
    unlike($err, qr/in a read-only transaction/, '... not PostgreSQL\'s read-only message');
}

# ---- promotion after retention dropped every segment ------------------------------------------
$primary->safe_psql('postgres', q{
    SELECT pgtopic.produce_batch('ret', array_agg('m' || i)) FROM generate_series(1, 20) AS i;
    BEGIN; SELECT pgtopic.produce_batch('ret', ARRAY['rolled back 20', 'rolled back 21']); ROLLBACK;
});
is($primary->safe_psql('postgres',
       q{SELECT count(*) FROM pgtopic.run_maintenance() WHERE topic = 'ret' AND action = 'drop segment'}),
   '2', 'retention drops both segments on the primary');
is($primary->safe_psql('postgres', q{SELECT log_start_offset || ',' || last_stable_offset FROM pgtopic.partitions WHERE topic = 'ret'}),
   '20,22', 'log start 20, LSO 22 (past the rolled-back 20-21)');
caught_up();
$primary->stop('immediate');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
my ($ls, $hw) = split /,/, $standby->safe_psql('postgres',
    q{SELECT log_start_offset || ',' || high_watermark FROM pgtopic.partitions WHERE topic = 'ret'});
cmp_ok($ls, '>=', 20, "the promoted standby's log start does not go back ($ls)");
cmp_ok($hw, '>=', 22, "the promoted standby's log end is above every offset handed out ($hw)");
my $next = $standby->safe_psql('postgres', q{SELECT msg_offset FROM pgtopic.produce('ret', 'after the failover')});
cmp_ok($next, '>=', 22, "the first offset after the failover is new ($next), not 0 nor a rolled-back one");
is($standby->safe_psql('postgres', q{SELECT string_agg(msg_offset::text, ',') FROM pgtopic.fetch('ret', 0, 0, 100)}),
   $next, 'a reader from 0 finds only the new message');
is($standby->safe_psql('postgres', q{SELECT msg_offset FROM pgtopic.produce('sb', 'after the failover', partition => 0)}) >= 2
   ? 'ok' : 'reused', 'ok', 'the other topic continues above its offsets too');

$standby->stop;
done_testing();
