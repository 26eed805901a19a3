# Wake-ups and the maintenance worker: consume(wait_ms) returns within moments of a commit and
# not on a rollback; LISTEN pgtopic gets the topic's name after a commit and nothing after a
# rollback; the worker comes back after being terminated, creates segments ahead of need and
# applies retention on its own, and removes members that stopped polling.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('wake');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pgtopic'
pgtopic.database = 'postgres'
pgtopic.maintenance_interval = '200ms'
pgtopic.notify_interval = '10ms'
pgtopic.max_poll_interval = '3s'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pgtopic;
    SELECT pgtopic.create_topic('wake', 2, segment_size => 100);
});

# ---- long poll ------------------------------------------------------------------------------
my $consumer = $node->background_psql('postgres');
$consumer->query_safe(q{SELECT count(*) FROM pgtopic.consume('wake', 'g', 10)});  # join, own both

sub timed_consume
{
    my ($wait_ms, $during) = @_;
    my $started = time;
    $consumer->{stdin} .= "SELECT count(*) FROM pgtopic.consume('wake', 'g', 10, $wait_ms);\n";
    $consumer->{run}->pump_nb;
    usleep(300_000);
    $during->();
    my $out = $consumer->query_safe('SELECT 1');    # waits for the consume to finish first
    return (time - $started, $out);
}

my ($elapsed, $out) = timed_consume(5000, sub {
    $node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'hello', partition => 1)});
});
like($out, qr/^1\n1$/m, 'the waiting consumer returns the committed message');
cmp_ok($elapsed, '<', 2.5, "it returns soon after the commit, not at wait_ms (took ${elapsed}s)");
note sprintf('long poll woke %.0f ms after it started (the commit came at 300 ms)', $elapsed * 1000);

($elapsed, $out) = timed_consume(1500, sub {
    $node->safe_psql('postgres', q{BEGIN; SELECT pgtopic.produce('wake', 'nope', partition => 1); ROLLBACK;});
});
like($out, qr/^0\n1$/m, 'a rolled-back message is not returned');
cmp_ok($elapsed, '>=', 1.4, "after a rollback the consumer waits until wait_ms (took ${elapsed}s)");

# DDL does not wait for a long poll (the sleeping consumer holds no lock on the topic), and
# alter_topic's new partition is seen by the waiting consumer, which a produce there wakes.
($elapsed, $out) = timed_consume(6000, sub {
    my $t0 = time;
    $node->safe_psql('postgres', q{SELECT pgtopic.alter_topic('wake', partitions => 3)});
    my $ddl = time - $t0;
    cmp_ok($ddl, '<', 1.0, sprintf('alter_topic during a long poll returns at once (%.0f ms)', $ddl * 1000));
    usleep(1_200_000);  # the consumer looks the topic up again within a second
    $node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'on the new partition', partition => 2)});
});
like($out, qr/^1\n1$/m, 'the waiting consumer takes the new partition and returns its message');
cmp_ok($elapsed, '<', 4.5, "it returns soon after that produce, not at wait_ms (took ${elapsed}s)");
($elapsed, $out) = timed_consume(3000, sub {
    my $t0 = time;
    $node->safe_psql('postgres', q{SELECT pgtopic.create_topic('wake_drop')});
    $node->safe_psql('postgres', q{SELECT pgtopic.drop_topic('wake_drop')});
    my $ddl = time - $t0;
    cmp_ok($ddl, '<', 1.0, sprintf('create and drop of another topic during a long poll do not wait (%.0f ms)', $ddl * 1000));
});
$consumer->quit;

# fetch(wait_ms) long-polls the same way, without a group: woken by a commit, not by a rollback,
# and alter_topic does not wait for it
my $fetcher = $node->background_psql('postgres');
my $from = $node->safe_psql('postgres', q{SELECT high_watermark FROM pgtopic.partitions WHERE topic = 'wake' AND "partition" = 0});
sub timed_fetch
{
    my ($wait_ms, $during) = @_;
    my $started = time;
    $fetcher->{stdin} .= "SELECT count(*) FROM pgtopic.fetch('wake', 0, $from, 10, wait_ms => $wait_ms);\n";
    $fetcher->{run}->pump_nb;
    usleep(300_000);
    $during->();
    my $out = $fetcher->query_safe('SELECT 1');
    return (time - $started, $out);
}
($elapsed, $out) = timed_fetch(1500, sub {
    $node->safe_psql('postgres', q{BEGIN; SELECT pgtopic.produce('wake', 'nope', partition => 0); ROLLBACK;});
    my $t0 = time;
    $node->safe_psql('postgres', q{SELECT pgtopic.alter_topic('wake', retention => '1 day')});
    cmp_ok(time - $t0, '<', 1.0, 'alter_topic during a fetch long poll returns at once');
});
like($out, qr/^0\n1$/m, 'a fetch long poll returns nothing after a rollback');
cmp_ok($elapsed, '>=', 1.4, "and waits until wait_ms (took ${elapsed}s)");
($elapsed, $out) = timed_fetch(5000, sub {
    $node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'for the fetch', partition => 0)});
});
like($out, qr/^1\n1$/m, 'a fetch long poll returns the committed message');
cmp_ok($elapsed, '<', 2.5, "soon after the commit, not at wait_ms (took ${elapsed}s)");
$fetcher->quit;

# ---- LISTEN pgtopic ---------------------------------------------------------------------------
# (with a hostile format() in public: the worker, a superuser, must not pick it up)
$node->safe_psql('postgres', q{
    CREATE TABLE public.hostile_calls (what text);
    CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE sql AS
        $$ INSERT INTO public.hostile_calls VALUES ('format'); SELECT 'pwned'::text $$;
    ALTER DATABASE postgres SET search_path = public, pg_catalog;
});
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN pgtopic');
my $listener_pid = $listener->query_safe('SELECT pg_backend_pid()');
$node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'ping')});
my $heard = '';
for (1 .. 50) {
    $heard .= $listener->query_safe('SELECT 1');
    last if $heard =~ /payload "wake"/;
    usleep(20_000);
}
like($heard, qr/Asynchronous notification "pgtopic" with payload "wake" received/, 'LISTEN pgtopic hears the topic after a commit');

$node->safe_psql('postgres', q{BEGIN; SELECT pgtopic.produce('wake', 'nope'); ROLLBACK;});
usleep(300_000);
$heard = $listener->query_safe('SELECT 1');
unlike($heard, qr/Asynchronous notification/, 'and nothing after a rollback');

# many commits in one interval are coalesced into few notifications
$node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'burst ' || i) FROM generate_series(1, 200) AS i});
usleep(300_000);
$heard = $listener->query_safe('SELECT 1');
my $count = () = $heard =~ /Asynchronous notification/g;
cmp_ok($count, '>=', 1, 'a burst of commits is notified');
note "a transaction of 200 produce calls produced $count notification(s)";
$listener->quit;

# The worker sends rounds only while some session has run LISTEN pgtopic (counted by a
# ProcessUtility hook until the session exits). A new listener after the last one left, whose
# LISTEN runs inside PL/pgSQL, is still counted and hears the next commit.
$listener_pid =~ s/\D//g;
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $listener_pid")
  or die 'the first listener did not exit';
$node->safe_psql('postgres', q{SELECT pgtopic.create_topic('stale'); SELECT pgtopic.produce('stale', 'nobody listens')});
$listener = $node->background_psql('postgres');
$listener->query_safe(q{DO $$ BEGIN EXECUTE 'LISTEN pgtopic'; END $$});
usleep(300_000);
$heard = $listener->query_safe('SELECT 1');
unlike($heard, qr/payload "stale"/, 'a first listener gets no notification for commits made while nobody listened');
$node->safe_psql('postgres', q{SELECT pgtopic.produce('wake', 'ping again')});
$heard = '';
for (1 .. 50) {
    $heard .= $listener->query_safe('SELECT 1');
    last if $heard =~ /payload "wake"/;
    usleep(20_000);
}
like($heard, qr/Asynchronous notification "pgtopic" with payload "wake" received/,
     'a listener that joins after the last one left (LISTEN from PL/pgSQL) hears the next commit');
unlike($heard, qr/payload "stale"/, 'and only that one');
$listener->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.hostile_calls'), '0',
   'the worker never called a function planted in public');

# ---- the worker -------------------------------------------------------------------------------
my $worker_pid = $node->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgtopic maintenance'});
like($worker_pid, qr/^\d+$/, 'the maintenance worker runs');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker_pid, 5000)");
ok($node->poll_query_until('postgres',
        qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pgtopic maintenance' AND pid <> $worker_pid}),
    'the worker is restarted after being terminated');

# segments ahead of need: fill segment 0 of partition 0 past its middle; the worker (asked by
# the producer) creates segment 1 (and, segments being small, a few more) before anyone writes there.
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('ahead', 1, segment_size => 100);
    SELECT pgtopic.produce_batch('ahead', array_agg('m' || i)) FROM generate_series(1, 30) AS i;
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) >= 2 FROM pgtopic._segments((SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'ahead'), 0)}),
    'the worker creates the next segment ahead of need');

# retention by the worker alone
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('short', 1, retention_bytes => 1, segment_size => 10);
    SELECT pgtopic.produce_batch('short', array_agg('m' || i)) FROM generate_series(1, 55) AS i;
});
ok($node->poll_query_until('postgres',
        q{SELECT log_start_offset = 50 FROM pgtopic.partitions WHERE topic = 'short'}),
    'the worker drops expired segments and the log start offset moves');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.fetch('short', 0, 0, 100)}), '5',
   'the active segment stays');

# one topic whose lock is held (its maintenance times out, lock_timeout 1s) delays only itself:
# the worker maintains each topic in a transaction of its own
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('locked', 1, retention_bytes => 1, segment_size => 10);
    SELECT pgtopic.produce_batch('locked', array_agg('m' || i)) FROM generate_series(1, 25) AS i;
});
my $locker = $node->background_psql('postgres');
$locker->query_safe(q{BEGIN; SELECT format('LOCK TABLE pgtopic_data.topic_%s IN ACCESS EXCLUSIVE MODE', topic_id)
                              FROM pgtopic.catalog_topics WHERE topic = 'locked' \gexec});
$node->safe_psql('postgres', q{
    SELECT pgtopic.create_topic('free', 1, retention_bytes => 1, segment_size => 10);
    SELECT pgtopic.produce_batch('free', array_agg('m' || i)) FROM generate_series(1, 25) AS i;
});
ok($node->poll_query_until('postgres',
        q{SELECT log_start_offset = 20 FROM pgtopic.partitions WHERE topic = 'free'}),
    'while one topic is locked, the worker still applies retention to the others');
$locker->query_safe('ROLLBACK');
$locker->quit;
ok($node->poll_query_until('postgres',
        q{SELECT log_start_offset = 20 FROM pgtopic.partitions WHERE topic = 'locked'}),
    'and to the locked topic once its lock is free');

# the worker's counters (pgtopic.maintenance_status): the locked topic's maintenance failed on its
# lock timeout, the drops above are counted, the pid is the running worker's
my $status = $node->safe_psql('postgres', q{
    SELECT s.pid = a.pid, s.passes > 0, s.failures >= 1, s.last_error, s.last_failure_at > s.started_at,
           s.segments_dropped >= 7, s.segments_created >= 3, s.last_pass_at > s.started_at
      FROM pgtopic.maintenance_status() s, pg_stat_activity a WHERE a.backend_type = 'pgtopic maintenance'});
is($status, 't|t|t|canceling statement due to lock timeout|t|t|t|t',
   'maintenance_status: worker pid, passes, the failed step with its error, segments dropped and created');
$node->safe_psql('postgres', q{CREATE ROLE not_admin LOGIN IN ROLE pgtopic_consumer, pgtopic_producer});
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM pgtopic.maintenance_status()',
    extra_params => ['-U', 'not_admin']);
like($err, qr/permission denied for function maintenance_status/, 'maintenance_status is for pgtopic_admin only');

# max poll interval: a member that owns partitions and stops polling is fenced, not terminated,
# once another member needs its partitions: they go to the member that polls, the idle session
# lives on, and its next commit is rejected.
my $sleepy = $node->background_psql('postgres', on_error_stop => 0);
$sleepy->query_safe(q{SELECT count(*) FROM pgtopic.consume('ahead', 'sleepy', 1)});
my $sleepy_pid = $sleepy->query_safe('SELECT pg_backend_pid()');
$sleepy_pid =~ s/\D//g;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.consume('ahead', 'sleepy', 100)}), '0',
   'within max_poll_interval the idle member keeps its partition');
sleep(4);
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgtopic.consume('ahead', 'sleepy', 100)}), '30',
   'after it, the member that polls takes the partition (from the committed offset: at least once)');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $sleepy_pid"), '1',
   'the idle member\'s session is not terminated');
$sleepy->query(q{SELECT pgtopic.commit('ahead', 'sleepy')});
like($sleepy->{stderr}, qr/no longer in group "sleepy"/, 'its next commit is rejected (fenced)');
eval { $sleepy->quit; };

$node->stop;
done_testing();
