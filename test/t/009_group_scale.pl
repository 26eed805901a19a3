# The group coordinator at scale, with default max_locks_per_transaction and max_connections =
# 200 (issue 12, item 1): one 1000-partition topic, G groups x 10 members (session members, one
# advisory lock each), every partition owned exactly once per group; then a role with only the
# consume right joins groups until the coordinator is full: its call fails with 53400 naming the
# setting, and everyone else (new connections included) carries on.
#
# CI size: G = 20 with pgtopic.max_group_partitions = 25000. The full size of the issue
# (G = 100 with the default max_group_partitions, 131072) runs with PGTOPIC_SCALE_FULL=1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $full = $ENV{PGTOPIC_SCALE_FULL} ? 1 : 0;
my $groups = $full ? 100 : 20;
my $assignments = $full ? 131072 : 25000;
my $partitions = 1000;

my $node = PostgreSQL::Test::Cluster->new('scale');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgtopic'
max_connections = 200
pgtopic.maintenance_worker = off
pgtopic.max_group_partitions = $assignments
pgtopic.shared_partitions = 16384
});
$node->start;
my $t0 = time;
$node->safe_psql('postgres', qq{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('wide', $partitions);
    SELECT count(*) FROM generate_series(0, 199) AS p, LATERAL pgtopic.produce('wide', 'm' || p, partition => p);
});
note sprintf('1000-partition topic made and filled in %.1f s', time - $t0);

# sessions: 10 per 50 groups; session s joins the groups g with g mod k = s mod k
my $k = int(($groups + 49) / 50);
my $n_sessions = 10 * $k;
my @sessions = map { $node->background_psql('postgres') } 1 .. $n_sessions;
$t0 = time;
for my $round (1 .. 3) {
    for my $s (0 .. $n_sessions - 1) {
        my $mod = $s % $k;
        $sessions[$s]->query_safe(
            "SELECT count(*) FROM generate_series(0, $groups - 1) g, LATERAL pgtopic.consume('wide', 'sg' || g, 10) c "
              . "WHERE g % $k = $mod");
    }
}
my $elapsed = time - $t0;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic_internal._members()}), $groups * 10,
   "$groups groups x 10 members");
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM (SELECT group_id, p FROM pgtopic_internal._members(), unnest(partitions) p GROUP BY 1, 2
                          HAVING count(*) = 1) x}), $groups * $partitions,
   'every partition of every group owned by exactly one member');
is($node->safe_psql('postgres', q{SELECT min(cardinality(partitions)) || '-' || max(cardinality(partitions)) FROM pgtopic_internal._members()}),
   '100-100', 'fair shares: 100 partitions each');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 29698}),
   $groups * 10, 'one advisory lock per member (its anchor), none per partition');
note sprintf('3 rounds of %d polls: %.1f s (%.1f ms per poll)', $groups * 10 * 3, $elapsed,
             1000 * $elapsed / ($groups * 30));

# a steady poll of a member of a 1000-partition group does not grow with the lock table
$t0 = time;
for (1 .. 20) {
    $sessions[0]->query_safe(q{SELECT count(*) FROM pgtopic.consume('wide', 'sg0', 10)});
}
note sprintf('steady poll in a group of 10 members over 1000 partitions: %.2f ms', (time - $t0) * 1000 / 20);

# a role with only the consume right joins groups until the coordinator is full
$node->safe_psql('postgres', q{
    CREATE ROLE joiner LOGIN;
    GRANT pgtopic_consumer TO joiner;
    SELECT pgtopic.grant_topic('wide', 'joiner', 'consume');
});
my $joiner = $node->background_psql('postgres', on_error_stop => 0, extra_params => ['-U', 'joiner']);
my $fits = int(($assignments - $groups * $partitions) / $partitions);
$joiner->query(qq{
    DO \$\$
    DECLARE n integer := 0;
    BEGIN
        LOOP
            PERFORM count(*) FROM pgtopic.consume('wide', 'lim' || n, 0);
            n := n + 1;
            EXIT WHEN n > 1000;
        END LOOP;
    EXCEPTION WHEN configuration_limit_exceeded THEN
        RAISE NOTICE 'joined % groups, then: %', n, SQLERRM;
        RAISE;
    END \$\$;
});
like($joiner->{stderr}, qr/joined $fits groups, then: too many consumer group partition assignments/,
     "the joiner gets $fits groups, then 53400");
like($joiner->{stderr}, qr/pgtopic\.max_group_partitions/, 'the hint names the setting');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'new connections still work');
is($sessions[1]->query_safe(q{SELECT count(*) FROM pgtopic.consume('wide', 'sg1', 0)}), '0',
   'the other members still poll');
$joiner->{stderr} = '';
is($joiner->query_safe('SELECT 1'), '1', "and the joiner's session too");

$_->quit for @sessions;
$joiner->quit;

# many topics with a group each (the issue's 100 topics x 100 partitions with PGTOPIC_SCALE_FULL=1;
# 10 in CI; 11,000 partitions in all need pgtopic.shared_partitions above its default 8192), joined
# by sessions of up to 50 memberships each (a session may be a member of at most
# 64 groups): each partition owned once
my $topics = $full ? 100 : 10;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pgtopic_internal._members()})
  or die 'the members of the first part did not go';
$t0 = time;
$node->safe_psql('postgres', "SELECT pgtopic.create_topic('t$_', 100)") for 1 .. $topics;
note sprintf('%d topics of 100 partitions made in %.1f s', $topics, time - $t0);
my $n_members = int(($topics + 49) / 50);
my @members = map { $node->background_psql('postgres') } 1 .. $n_members;
$t0 = time;
$members[$_ % $n_members]->query_safe("SELECT count(*) FROM pgtopic.consume('t$_', 'g', 1)") for 1 .. $topics;
note sprintf('%d session(s) joined %d groups in %.1f s', $n_members, $topics, time - $t0);
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || sum(cardinality(partitions)) FROM pgtopic_internal._members()}),
   "$topics " . ($topics * 100), "$topics topics x 100 partitions with a group each: every partition owned");
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 29698}),
   $topics, 'one anchor lock per membership');
$_->quit for @members;
$node->stop;
done_testing();
