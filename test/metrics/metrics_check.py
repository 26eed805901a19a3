#!/usr/bin/python3
"""pgtopic's Prometheus metrics, end to end: Debian's prometheus-postgres-exporter with
monitoring/queries.yaml against a throwaway server with live producers, a lagging group, a live
member, a producer transaction held open and retention that dropped segments; scrapes /metrics
twice with curl and checks the series and their values against what the scenario built and what
SQL says.

usage: metrics_check.py [--dir /tmp/pgtopic-metrics] [--pg-port 55445] [--port 19187]
                        [--bindir /usr/lib/postgresql/15/bin] [--exporter /usr/bin/prometheus-postgres-exporter]
Run as root (the server and the exporter run as postgres, in --dir, never in the checkout)."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from throwaway_server import ThrowawayServer, connect_with_extension  # noqa: E402

import psycopg2  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MONITORING = os.path.join(HERE, '..', '..', 'monitoring')
SETTINGS = """
pgtopic.maintenance_interval = '1s'
fsync = off
synchronous_commit = off
log_line_prefix = '%m [%p] %e %a: '
"""

failures = []


def check(what, ok, detail=''):
    print('metrics: %s %s%s' % ('ok  ' if ok else 'FAIL', what, (' (%s)' % detail) if detail else ''))
    if not ok:
        failures.append(what)


def scrape(port):
    out = subprocess.run(['curl', '-sf', '--max-time', '20', 'http://127.0.0.1:%d/metrics' % port],
                         stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        return None, ''
    series = {}
    for line in out.stdout.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or '')))
        series[(m.group(1), labels)] = float(m.group(4))
    return series, out.stdout


def value(series, name, **labels):
    """The value of the one series `name` whose labels include `labels` (None if none)."""
    want = set(labels.items())
    found = [v for (n, ls), v in series.items() if n == name and want <= set(ls)]
    return found[0] if len(found) == 1 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--dir', default=os.environ.get('PGTOPIC_METRICS_DIR', '/tmp/pgtopic-metrics'))
    ap.add_argument('--pg-port', type=int, default=int(os.environ.get('PGTOPIC_METRICS_PG_PORT', '55445')))
    ap.add_argument('--port', type=int, default=int(os.environ.get('PGTOPIC_METRICS_PORT', '19187')))
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--exporter', default='/usr/bin/prometheus-postgres-exporter')
    a = ap.parse_args()

    server = ThrowawayServer(a.bindir, a.dir, a.pg_port, SETTINGS)
    server.start()
    exporter = None
    stop = threading.Event()
    threads = []
    try:
        su = connect_with_extension(server.dsn)
        cur = su.cursor()
        with open(os.path.join(MONITORING, 'setup.sql')) as f:
            cur.execute(f.read())
        cur.execute('CREATE ROLE prometheus LOGIN')
        cur.execute('GRANT pg_monitor TO prometheus')

        # orders: 100 / 50 / 20 messages on partitions 0 / 1 / 2
        cur.execute("SELECT pgtopic.create_topic('orders', 3)")
        for p, n in ((0, 100), (1, 50), (2, 20)):
            cur.execute("SELECT count(*) FROM generate_series(1, %s) i, "
                        "LATERAL pgtopic.produce('orders', 'order ' || i, partition => %s)", (n, p))
        # events: 450 per partition in segments of 100, retention 1 s: s0..s3 are dropped
        cur.execute("SELECT pgtopic.create_topic('events', 2, retention => '1 second', segment_size => 100)")
        for p in (0, 1):
            cur.execute("SELECT count(*) FROM generate_series(1, 450) i, "
                        "LATERAL pgtopic.produce('events', 'event ' || i, partition => %s)", (p,))
        cur.execute("SELECT pgtopic.create_topic('clicks', 2)")

        # billing: a group that consumed once, left, and is behind (committed 60 / 5 / 0)
        billing = psycopg2.connect(server.dsn)
        billing.autocommit = True
        bc = billing.cursor()
        bc.execute("SELECT count(*) FROM pgtopic.consume('orders', 'billing', max_messages => 1)")
        bc.execute("SELECT pgtopic.commit('orders', 'billing')")
        bc.execute("SELECT pgtopic.leave('orders', 'billing')")
        for p, off in ((0, 60), (1, 5), (2, 0)):
            bc.execute("SELECT pgtopic.seek('orders', 'billing', %s, %s)", (p, off))
        billing.close()

        # audit: one live member that read everything and stays connected
        audit = psycopg2.connect(server.dsn)
        audit.autocommit = True
        ac = audit.cursor()
        got = 0
        while True:
            ac.execute("SELECT count(*) FROM pgtopic.consume('orders', 'audit', max_messages => 1000)")
            n = ac.fetchone()[0]
            got += n
            if n == 0:
                break
        check('setup: audit consumed all 170 orders', got == 170, 'got %d' % got)

        # a producer transaction held open on orders/0: the LSO stays at 100, the HWM is 101
        holder = psycopg2.connect(server.dsn)
        hc = holder.cursor()
        hc.execute("SELECT pgtopic.produce('orders', 'held', partition => 0)")
        held_since = time.time()

        # live producers on clicks
        def produce_clicks():
            c = psycopg2.connect(server.dsn)
            c.autocommit = True
            k = c.cursor()
            while not stop.is_set():
                k.execute("SELECT pgtopic.produce_batch('clicks', ARRAY['a', 'b', 'c', 'd', 'e'], "
                          "ARRAY['k1', 'k2', 'k3', 'k4', 'k5'])")
                time.sleep(0.05)
            c.close()
        for _ in range(2):
            t = threading.Thread(target=produce_clicks, daemon=True)
            t.start()
            threads.append(t)

        # retention: past the 1 s, one pass by hand (the worker also runs every second)
        time.sleep(1.5)
        cur.execute('SELECT pgtopic.run_maintenance()')
        cur.execute("SELECT count(*) FROM pgtopic.partitions WHERE topic = 'events' AND log_start_offset = 400")
        check('setup: retention dropped events s0..s3', cur.fetchone()[0] == 2)

        # the exporter, as postgres, with its queries file copied to a directory postgres owns
        queries = os.path.join(a.dir, 'queries.yaml')
        shutil.copy(os.path.join(MONITORING, 'queries.yaml'), queries)
        shutil.chown(queries, 'postgres', 'postgres')
        env = {'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8',
               'DATA_SOURCE_NAME': 'host=%s port=%d user=prometheus dbname=postgres sslmode=disable' % (a.dir, a.pg_port)}
        log = open(os.path.join(a.dir, 'exporter.log'), 'w')
        exporter = subprocess.Popen(['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', a.exporter,
                                     '--web.listen-address=127.0.0.1:%d' % a.port, '--extend.query-path=' + queries,
                                     '--log.level=warn'],
                                    env=env, cwd=a.dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        first = None
        deadline = time.time() + 30
        while time.time() < deadline and exporter.poll() is None:
            t0 = time.time()
            first, text = scrape(a.port)
            if first and any(n == 'pgtopic_worker_running' for n, _ in first):
                break
            time.sleep(0.3)
        t1 = time.time()
        check('exporter answers /metrics with pgtopic series', bool(first) and any(n.startswith('pgtopic_') for n, _ in first),
              'exporter %s' % ('exited %s' % exporter.returncode if exporter.poll() is not None else 'running'))
        if not first:
            with open(os.path.join(a.dir, 'exporter.log')) as f:
                print(f.read()[-3000:])
            return 1
        time.sleep(2)
        second, _ = scrape(a.port)
        s = first

        check('pg_up is 1', value(s, 'pg_up') == 1.0, value(s, 'pg_up'))
        load = [v for (n, ls), v in s.items() if n == 'pg_exporter_user_queries_load_error']
        check('queries.yaml loaded without error', load and all(v == 0 for v in load), load)
        err = value(s, 'pg_exporter_last_scrape_error')
        check('the scrape had no error', err == 0.0, err)
        with open(os.path.join(a.dir, 'exporter.log')) as f:
            elog = f.read()
        check('exporter log has no query error', 'pgtopic' not in elog, elog[-500:])

        for p, lag in (('0', 40), ('1', 45), ('2', 20)):
            check('lag billing/orders/%s = %d' % (p, lag),
                  value(s, 'pgtopic_consumer_lag', group_name='billing', topic='orders', partition=p) == lag,
                  value(s, 'pgtopic_consumer_lag', group_name='billing', topic='orders', partition=p))
            check('lag audit/orders/%s = 0' % p,
                  value(s, 'pgtopic_consumer_lag', group_name='audit', topic='orders', partition=p) == 0)
        check('committed offset billing/orders/0 = 60',
              value(s, 'pgtopic_consumer_committed_offset', group_name='billing', topic='orders', partition='0') == 60)

        hwm = {p: value(s, 'pgtopic_partition_high_watermark', topic='orders', partition=p) for p in '012'}
        check('orders high watermarks 101 / 50 / 20', hwm == {'0': 101, '1': 50, '2': 20}, hwm)
        check('orders/0 last stable offset 100 (held back)',
              value(s, 'pgtopic_partition_last_stable_offset', topic='orders', partition='0') == 100)
        check('orders/0: 1 LSO holder, 1 offset held back',
              value(s, 'pgtopic_partition_lso_holders', topic='orders', partition='0') == 1
              and value(s, 'pgtopic_partition_lso_held_back_offsets', topic='orders', partition='0') == 1)
        age = value(s, 'pgtopic_partition_lso_oldest_holder_seconds', topic='orders', partition='0')
        check('orders/0 oldest LSO holder age within the time it was held (%.1f..%.1f s)'
              % (t0 - held_since - 0.5, t1 - held_since + 0.5),
              age is not None and t0 - held_since - 0.5 <= age <= t1 - held_since + 0.5, age)
        check('orders/1: no LSO holder, age 0',
              value(s, 'pgtopic_partition_lso_holders', topic='orders', partition='1') == 0
              and value(s, 'pgtopic_partition_lso_oldest_holder_seconds', topic='orders', partition='1') == 0)

        for p in '01':
            check('events/%s log start 400, log end 450' % p,
                  value(s, 'pgtopic_partition_log_start_offset', topic='events', partition=p) == 400
                  and value(s, 'pgtopic_partition_high_watermark', topic='events', partition=p) == 450)
        cur.execute("""SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE c.relkind = 'r' AND c.relname LIKE 'topic\\_' || (SELECT topic_id FROM pgtopic.catalog_topics
                                                            WHERE topic = 'events') || '\\_p%\\_s%'""")
        segs = cur.fetchone()[0]
        # (the worker keeps segments ahead of need, so the count is not a fixed number: the
        # metric must equal SQL's count, and retention must have dropped every segment below 4)
        cur.execute("""SELECT min(substring(c.relname FROM '_s([0-9]+)$')::int) FROM pg_inherits i
                         JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE c.relkind = 'r' AND c.relname LIKE 'topic\\_' || (SELECT topic_id FROM pgtopic.catalog_topics
                                                            WHERE topic = 'events') || '\\_p%\\_s%'""")
        lowest = cur.fetchone()[0]
        check('events segments = %d (SQL), none below segment 4 left (lowest %s)' % (segs, lowest),
              value(s, 'pgtopic_topic_segments', topic='events') == segs and segs > 0 and lowest == 4,
              value(s, 'pgtopic_topic_segments', topic='events'))
        cur.execute("SELECT bytes FROM pgtopic.topics WHERE topic = 'events'")
        sql_bytes = cur.fetchone()[0]
        got_bytes = value(s, 'pgtopic_topic_bytes', topic='events')
        check('events bytes within 10%% of SQL (%d)' % sql_bytes,
              got_bytes is not None and abs(got_bytes - sql_bytes) <= sql_bytes * 0.1, got_bytes)
        check('orders partitions = 3', value(s, 'pgtopic_topic_partitions', topic='orders') == 3)

        check('audit: 1 member owning 3 partitions',
              value(s, 'pgtopic_group_members', group_name='audit', topic='orders') == 1
              and value(s, 'pgtopic_group_owned_partitions', group_name='audit', topic='orders') == 3)
        check('billing: no member', value(s, 'pgtopic_group_members', group_name='billing', topic='orders') == 0)

        check('maintenance worker running, interval 1 s, not in recovery',
              value(s, 'pgtopic_worker_running') == 1 and value(s, 'pgtopic_worker_maintenance_interval_seconds') == 1
              and value(s, 'pgtopic_worker_in_recovery') == 0)
        check('worker counters: passes done, none failed, last pass recent, segments created',
              (value(s, 'pgtopic_worker_passes_total') or 0) >= 1 and value(s, 'pgtopic_worker_failures_total') == 0
              and 0 <= (value(s, 'pgtopic_worker_seconds_since_last_pass') or -1) < 10
              and (value(s, 'pgtopic_worker_segments_created_total') or 0) > 0
              and value(s, 'pgtopic_worker_segments_dropped_total') is not None
              and value(s, 'pgtopic_worker_notifications_total') is not None,
              [value(s, 'pgtopic_worker_' + n) for n in ('passes_total', 'failures_total', 'seconds_since_last_pass',
                                                         'segments_created_total', 'segments_dropped_total')])

        clicks = [sum(v for (n, ls), v in x.items() if n == 'pgtopic_partition_high_watermark'
                      and ('topic', 'clicks') in ls) for x in (first, second or {})]
        check('live producers: clicks log end grows between scrapes (%d -> %d)' % tuple(clicks),
              0 < clicks[0] < clicks[1])

        print('metrics: excerpt of the first scrape:')
        for line in text.splitlines():
            if re.match(r'pgtopic_(consumer_lag\{group_name="billing"|partition_(high_watermark|last_stable_offset|'
                        r'lso_oldest_holder_seconds|log_start_offset)\{partition="0",server="[^"]*",topic="(orders|events)"|'
                        r'topic_segments|group_members|worker_(running|passes_total|failures_total|segments_dropped_total))', line):
                print('  ' + line)
        holder.rollback()
        holder.close()
        audit.close()
        su.close()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        if exporter is not None:
            exporter.terminate()
            try:
                exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exporter.kill()
        server.stop()
    if failures:
        print('metrics: FAIL: %d checks failed: %s' % (len(failures), '; '.join(failures)))
        return 1
    print('metrics: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
