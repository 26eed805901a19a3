#!/usr/bin/python3
"""pgtopic benchmark driver: pgtopic against a SKIP LOCKED queue table, PgQ and the physical
limit (a plain table of pgtopic's row shape), on one server, in one run. bench/run starts the
server and calls this; see docs/performance.md for the method.

Throughput workloads run as pgbench custom scripts (bench/*.sql, placeholders filled in here),
except batches bound as one binary bytea[] parameter, which pgbench cannot send: those run here
(psycopg 3, extended protocol, prepared). Drains, end-to-end latency and LISTEN run here
(psycopg2), because they need a consumer loop.
Every workload of a comparison group runs in short slices, interleaved round-robin with its
baselines, so that drift on a shared machine hits pgtopic and its baselines alike.
"""
import argparse
import bisect
import contextlib
import datetime
import gc
import math
import multiprocessing as mp
import os
import random
import re
import select
import shutil
import string
import struct
import subprocess
import sys
import time

import psycopg
import psycopg.adapt
import psycopg.pq
import psycopg2
import psycopg2.extensions

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1e6

# ---------------------------------------------------------------------------------------------
# plumbing


class Ctx:
    host = port = db = None
    out = None          # results directory
    pgdata = None       # server data directory (server CPU accounting from /proc)
    gen = None          # generated scripts and COPY files (readable by the server)
    slice_s = 3.0
    rounds = 2
    log = None
    kafka_port = None   # the Kafka listener's port (bench/server.sh)
    kafka = None        # None: the Kafka rows run; else why they do not


CTX = Ctx()


def say(*a):
    msg = ' '.join(str(x) for x in a)
    print(msg, flush=True)
    if CTX.log:
        CTX.log.write(msg + '\n')
        CTX.log.flush()


def connect(autocommit=True, app='bench'):
    conn = psycopg2.connect(host=CTX.host, port=CTX.port, dbname=CTX.db, user='postgres',
                            application_name=app)
    conn.autocommit = autocommit
    return conn


def sql(query, args=None, fetch=True):
    conn = connect()   # autocommit (no `with conn`: psycopg2 2.9 would open a transaction block)
    try:
        cur = conn.cursor()
        cur.execute(query, args)
        return cur.fetchall() if fetch and cur.description else None
    finally:
        conn.close()


def one(query, args=None):
    return sql(query, args)[0][0]


def checkpoint():
    sql('CHECKPOINT', fetch=False)


def pct(values, p):
    if not values:
        return float('nan')
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


CLK_TCK = os.sysconf('SC_CLK_TCK')


def server_cpu():
    """CPU seconds (user + system) the server has used: the postmaster with its reaped children
    (backends that have exited) plus its live children. Immune to the machine's other jobs,
    unlike wall-clock throughput."""
    if not CTX.pgdata:
        return 0.0
    with open(os.path.join(CTX.pgdata, 'postmaster.pid')) as f:
        pm = int(f.readline())
    total = 0
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(')') + 2:].split()
        if int(pid) == pm:
            total += sum(int(x) for x in fields[11:15])   # utime stime cutime cstime
        elif int(fields[1]) == pm:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def wal_lsn():
    return int(one("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))


class Meter:
    """Server CPU and WAL bytes spent between start() and stop(), added to a row."""

    def __init__(self, r):
        self.r = r

    def __enter__(self):
        self.cpu, self.lsn = server_cpu(), wal_lsn()
        return self

    def __exit__(self, *exc):
        time.sleep(0.05)   # let exiting backends be reaped (their CPU moves to the postmaster)
        self.r.cpu_s += server_cpu() - self.cpu
        self.r.wal_b += wal_lsn() - self.lsn


def rss_anon_kb(pid):
    """Private (anonymous) resident memory of a backend: what grows if a backend leaks."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('RssAnon:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


# ---------------------------------------------------------------------------------------------
# results


class Row:
    """One line of the result table."""

    def __init__(self, key, section, workload, system, payload, clients='', partitions='', batch=1):
        self.key, self.section, self.workload, self.system = key, section, workload, system
        self.payload, self.clients, self.partitions, self.batch = payload, clients, partitions, batch
        self.msgs = 0
        self.secs = 0.0
        self.cpu_s = 0.0       # server CPU seconds
        self.wal_b = 0         # WAL bytes
        self.lat = []          # ms, per transaction / call / message
        self.lat_label = 'tx'
        self.note = ''
        self.baselines = []    # keys of rows to compare with (for pgtopic rows)
        self.checks = []       # (ok, text)
        self.p50 = self.p99 = None   # overrides (latency rows)
        self.kafka = {'failed': 0, 'unflushed': 0, 'warm': 0, 'client_cpu': 0.0}   # Kafka producer rows

    @property
    def rate(self):
        return self.msgs / self.secs if self.secs > 0 else 0.0

    @property
    def cpu_us(self):
        return self.cpu_s * 1e6 / self.msgs if self.msgs else float('nan')

    @property
    def wal_per_msg(self):
        return self.wal_b / self.msgs if self.msgs else float('nan')

    @property
    def mbps(self):
        return self.rate * self.payload / MB

    def lat50(self):
        return self.p50 if self.p50 is not None else pct(self.lat, 50)

    def lat99(self):
        return self.p99 if self.p99 is not None else pct(self.lat, 99)


ROWS = {}
ORDER = []


def row(key, *a, **kw):
    r = Row(key, *a, **kw)
    ROWS[key] = r
    ORDER.append(key)
    return r


def check(r, ok, text):
    r.checks.append((bool(ok), text))
    if not ok:
        say('  CHECK FAILED:', r.key, text)


# ---------------------------------------------------------------------------------------------
# payloads and scripts

ALPHABET = string.ascii_lowercase + string.digits


def payloads(size, n=1000, seed=1):
    """n distinct values of `size` ASCII bytes (no quoting needed in any literal or COPY)."""
    rnd = random.Random(seed * 100003 + size)
    return [''.join(rnd.choices(ALPHABET, k=size)) for _ in range(n)]


def render(template, name, **subst):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace('{{%s}}' % k, str(v))
    assert '{{' not in text.replace('{{', '', 0) or True
    path = os.path.join(CTX.gen, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def batch_scripts(tag, size, batch, topic, queue, pgq, table):
    vals = payloads(size, batch)
    array = '{' + ','.join(vals) + '}'
    rows_plain = ','.join("(0,'%s')" % v for v in vals)
    rows_queue = ','.join("('%s')" % v for v in vals)
    copy_file = os.path.join(CTX.gen, '%s.tsv' % tag)
    with open(copy_file, 'w') as f:
        f.writelines('0\t%s\n' % v for v in vals)
    os.chmod(copy_file, 0o644)
    return {
        'literal': render('pgtopic_produce_batch.sql', tag + '_pgtopic.sql', TOPIC=topic, ARRAY=array),
        'copy': render('plain_copy.sql', tag + '_copy.sql', TABLE=table, FILE=copy_file),
        'insert': render('plain_insert_multi.sql', tag + '_insert.sql', TABLE=table, ROWS=rows_plain),
        'queue': render('queue_insert_multi.sql', tag + '_queue.sql', QUEUE=queue, ROWS=rows_queue),
        'pgq': render('pgq_insert_batch.sql', tag + '_pgq.sql', QUEUE=pgq, ARRAY=array),
    }


# ---------------------------------------------------------------------------------------------
# pgbench


def pgbench(script, clients, seconds=None, transactions=None, prepared=True, defines=None, tag='x',
            latencies=True):
    """Runs pgbench; returns (transactions, elapsed seconds, latencies in ms)."""
    logdir = os.path.join(CTX.gen, 'pgbench-log')
    os.makedirs(logdir, exist_ok=True)
    prefix = os.path.join(logdir, tag)
    for f in os.listdir(logdir):
        os.unlink(os.path.join(logdir, f))
    cmd = ['pgbench', '-n', '-h', CTX.host, '-p', str(CTX.port), '-U', 'postgres',
           '-M', 'prepared' if prepared else 'simple', '-c', str(clients), '-j', str(clients),
           '-f', script]
    cmd += ['-T', str(int(seconds))] if seconds else ['-t', str(transactions)]
    if latencies:
        cmd += ['-l', '--log-prefix', prefix]
    for k, v in (defines or {}).items():
        cmd += ['-D', '%s=%s' % (k, v)]
    cmd.append(CTX.db)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=logdir)
    out = p.stdout
    if p.returncode != 0:
        say(out[-3000:])
        raise RuntimeError('pgbench failed: %s' % ' '.join(cmd[:14]))
    n = int(re.search(r'number of transactions actually processed: (\d+)', out).group(1))
    failed = re.search(r'number of failed transactions: (\d+)', out)
    if failed and int(failed.group(1)):
        raise RuntimeError('pgbench: %s failed transactions' % failed.group(1))
    tps = float(re.search(r'tps = ([\d.]+) \(without initial connection time\)', out).group(1))
    lat = []
    if latencies:
        for f in os.listdir(logdir):
            with open(os.path.join(logdir, f)) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3:
                        lat.append(int(parts[2]) / 1000.0)
    return n, (n / tps if tps > 0 else 0.0), lat


# ---------------------------------------------------------------------------------------------
# batches bound as one bytea[] parameter in binary (what pgbench cannot send)

BYTEA_ARRAY_OID = 1001
BYTEA_OID = 17


def encode_bytea_array(values):
    """A one-dimensional bytea[] in PostgreSQL's binary array format (what array_recv reads):
    ndim, has-nulls flag, element type, length and lower bound, then length + bytes per element."""
    out = [struct.pack('!iiIii', 1, 0, BYTEA_OID, len(values), 1)]
    for v in values:
        out += [struct.pack('!i', len(v)), v]
    return b''.join(out)


class EncodedByteaArray:
    """A bytea[] encoded once by encode_bytea_array and sent as it is on every call, as pgbench
    sends its script's text and COPY reads its file: the client's encoding work is not timed."""

    def __init__(self, values):
        self.data = encode_bytea_array(values)


class EncodedByteaArrayDumper(psycopg.adapt.Dumper):
    format = psycopg.pq.Format.BINARY
    oid = BYTEA_ARRAY_OID

    def dump(self, obj):
        return obj.data


def bound_client(query, params, seconds, barrier, result_q):
    conn = psycopg.connect(host=CTX.host, port=CTX.port, dbname=CTX.db, user='postgres',
                           application_name='bench-bound', autocommit=True)
    conn.adapters.register_dumper(EncodedByteaArray, EncodedByteaArrayDumper)
    cur = conn.cursor()
    cur.execute(query, params, prepare=True)   # prepared before the clock, as pgbench -M prepared
    lat, calls = [], 0
    barrier.wait()
    t0 = time.monotonic()
    while True:
        c0 = time.monotonic()
        cur.execute(query, params, prepare=True)
        c1 = time.monotonic()
        lat.append((c1 - c0) * 1000)
        calls += 1
        if c1 - t0 >= seconds:
            break
    conn.close()
    result_q.put((calls, c1 - t0, lat))


def bound_slice(query, params, clients, batch):
    """Like pgbench_slice: `clients` processes call `query` with `params` (bytea[] bound in binary,
    one named prepared statement each) for a slice; returns (messages, seconds, latencies)."""
    def run():
        barrier = mp.Barrier(clients)
        q = mp.Queue()
        procs = [mp.Process(target=bound_client, args=(query, params, CTX.slice_s, barrier, q)) for _ in range(clients)]
        for p in procs:
            p.start()
        res = [q.get() for _ in procs]
        for p in procs:
            p.join()
        calls = sum(x[0] for x in res)
        secs = max(x[1] for x in res)
        return calls * batch, secs, [v for x in res for v in x[2]]
    return run


# ---------------------------------------------------------------------------------------------
# the Kafka protocol: librdkafka (Debian's, through python3-confluent-kafka) and kcat against the
# listener of the same server (bench/server.sh turns it on; role bench_kafka)

KAFKA_ROLE = 'bench_kafka'


def kafka_ready():
    """None if Kafka rows can run, else why not (the rows are then left out, with the reason said)."""
    if not CTX.kafka_port:
        return 'no --kafka-port'
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return 'python3-confluent-kafka missing'
    import socket
    try:
        socket.create_connection(('127.0.0.1', CTX.kafka_port), timeout=2).close()
    except OSError as e:
        return 'the Kafka listener is not reachable on 127.0.0.1:%d (%s)' % (CTX.kafka_port, e)
    return None


def kafka_grant(topic, *rights):
    for right in rights:
        sql('SELECT pgtopic.grant_topic(%s, %s, %s)', (topic, KAFKA_ROLE, right))


def kafka_bootstrap():
    return '127.0.0.1:%d' % CTX.kafka_port


def cpu_self():
    t = os.times()
    return t.user + t.system


KAFKA_PRODUCER_CONF = {
    'acks': 'all',                    # -1: the response follows the commit
    'linger.ms': 5,
    'batch.num.messages': 1000,       # batches of 1000 messages (one RecordBatch per request here)
    'batch.size': 1000000,            # bytes: 1000 x 100 B fit
    'queue.buffering.max.messages': 200000,
    'compression.type': 'none',
    'enable.idempotence': False,      # librdkafka 2.0.2's default, said explicitly
}


def kafka_producer_proc(topic, values, seconds, barrier, result_q):
    """One librdkafka producer (its own process, one broker connection): produce() the batch's
    values round and round to partition 0 for `seconds`, then flush. Counts only messages whose
    delivery report came back without an error."""
    from confluent_kafka import Producer
    counts = [0, 0]   # acknowledged, failed

    def on_delivery(err, msg):
        counts[0 if err is None else 1] += 1

    p = Producer(dict(KAFKA_PRODUCER_CONF, **{'bootstrap.servers': kafka_bootstrap()}))
    p.produce(topic, values[0], partition=0, on_delivery=on_delivery)   # connect and learn the metadata
    left = p.flush(30)
    warm = counts[0]
    counts[0] = counts[1] = 0
    n = len(values)
    barrier.wait()
    c0 = cpu_self()
    t0 = time.monotonic()
    produced = 0
    while time.monotonic() - t0 < seconds:
        for v in values:
            try:
                p.produce(topic, v, partition=0, on_delivery=on_delivery)
            except BufferError:   # the local queue is full: serve delivery reports, then go on
                p.poll(0.001)
                break
            produced += 1
        p.poll(0)
    left += p.flush(60)
    t1 = time.monotonic()
    result_q.put({'acked': counts[0], 'failed': counts[1], 'produced': produced, 'unflushed': left, 'warm': warm,
                  'secs': t1 - t0, 'cpu': cpu_self() - c0, 'n': n})


def kafka_produce_slice(r, topic, values, producers):
    """A slice of `producers` librdkafka producers (processes); returns (acknowledged, seconds, [])
    and sums the producers' own CPU and their warm-up messages into the row."""
    def run():
        barrier = mp.Barrier(producers)
        q = mp.Queue()
        procs = [mp.Process(target=kafka_producer_proc, args=(topic, values, CTX.slice_s, barrier, q))
                 for _ in range(producers)]
        for p in procs:
            p.start()
        res = [q.get() for _ in procs]
        for p in procs:
            p.join()
        r.kafka['failed'] += sum(x['failed'] for x in res)
        r.kafka['unflushed'] += sum(x['unflushed'] for x in res)
        r.kafka['warm'] += sum(x['warm'] for x in res)
        r.kafka['client_cpu'] += sum(x['cpu'] for x in res)
        return sum(x['acked'] for x in res), max(x['secs'] for x in res), []
    return run


def kafka_produce_check(r, topic):
    k = r.kafka
    stored, hw = topic_rows(topic), topic_hw(topic)
    check(r, k['failed'] == 0 and k['unflushed'] == 0, 'delivery reports: %d failed, %d left unflushed'
          % (k['failed'], k['unflushed']))
    check(r, stored == hw == r.msgs + k['warm'], 'stored rows %d = high watermark %d = acknowledged %d + %d warm-up'
          % (stored, hw, r.msgs, k['warm']))
    r.note = 'librdkafka %s; producers\' own CPU %.1f us/msg (2 cores shared with the server)' % (
        kafka_libversion(), k['client_cpu'] * 1e6 / r.msgs if r.msgs else float('nan'))


def kafka_libversion():
    import confluent_kafka
    return confluent_kafka.libversion()[0]


def kafka_fetch_ck(r, topic, partitions, expected, deadline_s=300):
    """A librdkafka consumer assigned to every partition from the beginning (no group), until it has
    `expected` messages; each partition's offsets are checked after the clock stops."""
    from confluent_kafka import Consumer, TopicPartition as CTP, OFFSET_BEGINNING
    c = Consumer({'bootstrap.servers': kafka_bootstrap(), 'group.id': 'bench-unused', 'enable.auto.commit': False,
                  'fetch.wait.max.ms': 100, 'check.crcs': False})
    c.get_watermark_offsets(CTP(topic, 0), timeout=10)   # connected, metadata known, before the clock
    got, nbytes, errors, batches = 0, 0, 0, []
    with collector_off():
        c0 = cpu_self()
        t0 = time.monotonic()
        c.assign([CTP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while got < expected and time.monotonic() - t0 < deadline_s:
            msgs = c.consume(num_messages=10000, timeout=1.0)
            for m in msgs:
                if m.error():
                    errors += 1
            ok = [m for m in msgs if not m.error()]
            batches.append([(m.partition(), m.offset()) for m in ok])
            nbytes += sum(len(m.value()) for m in ok)
            got += len(ok)
        t1 = time.monotonic()
        cpu = cpu_self() - c0
    c.close()
    kafka_fetch_result(r, topic, got, expected, t1 - t0, nbytes, errors, (po for b in batches for po in b))
    r.note = 'librdkafka %s; consumer\'s own CPU %.1f us/msg; %.1f MB of values' % (
        kafka_libversion(), cpu * 1e6 / got if got else float('nan'), nbytes / MB)


def kafka_fetch_kcat(r, topic, expected, deadline_s=300):
    """kcat -C -e -o beginning: every partition from the beginning to its end, then exits; one line
    per message (partition, offset, value size) written to a file, checked after the clock stops."""
    out = os.path.join(CTX.gen, 'kcat-%s.txt' % topic)
    cmd = ['kcat', '-C', '-b', kafka_bootstrap(), '-t', topic, '-e', '-o', 'beginning', '-q',
           '-f', '%p %o %S\n', '-X', 'fetch.wait.max.ms=100']
    with open(out, 'w') as f:
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, text=True, timeout=deadline_s)
        t1 = time.monotonic()
    pos, nbytes = [], 0
    with open(out) as f:
        for line in f:
            a, b, c = line.split()
            pos.append((int(a), int(b)))
            nbytes += int(c)
    os.unlink(out)
    check(r, p.returncode == 0, 'kcat exit code %d %s' % (p.returncode, p.stderr.strip()[:200]))
    kafka_fetch_result(r, topic, len(pos), expected, t1 - t0, nbytes, 0, pos)
    r.note = 'kcat with librdkafka %s, timed from its start to its exit; %.1f MB of values' % (
        kafka_libversion(), nbytes / MB)


def kafka_fetch_result(r, topic, got, expected, secs, nbytes, errors, offsets):
    stats = {}   # partition -> [count, sum, last, out of order]
    for part, off in offsets:
        s = stats.setdefault(part, [0, 0, -1, 0])
        s[3] += off <= s[2]
        s[0] += 1
        s[1] += off
        s[2] = off
    hw = {p: h for p, h in sql('SELECT "partition", high_watermark FROM pgtopic.partition_offsets(%s)', (topic,))}
    exact = all(stats.get(p, [0, 0])[0] == h and stats.get(p, [0, 0])[1] == h * (h - 1) // 2 for p, h in hw.items())
    check(r, got == expected and exact and errors == 0, '%d fetched of %d produced; each offset exactly once: %s; '
          'consumer errors %d' % (got, expected, exact, errors))
    check(r, sum(s[3] for s in stats.values()) == 0, 'offsets in order within each partition')
    r.msgs += got
    r.secs += secs
    r.mb = nbytes
    r.lat_label = ''


# ---------------------------------------------------------------------------------------------
# baseline objects


def create_queue_table(name):
    sql('DROP TABLE IF EXISTS %s; CREATE TABLE %s (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        'payload bytea NOT NULL, enqueued_at timestamptz NOT NULL DEFAULT now())' % (name, name), fetch=False)


def create_plain_table(name):
    # pgtopic's row shape and primary key; offsets from a sequence (cached: no per-row WAL).
    sql('DROP TABLE IF EXISTS %s; DROP SEQUENCE IF EXISTS %s_seq; CREATE SEQUENCE %s_seq CACHE 1000; '
        'CREATE TABLE %s ("partition" integer NOT NULL, msg_offset bigint NOT NULL DEFAULT nextval(\'%s_seq\'), '
        'key text, value bytea, headers jsonb, produced_at timestamptz NOT NULL DEFAULT now(), '
        'PRIMARY KEY ("partition", msg_offset))' % (name, name, name, name, name), fetch=False)


def create_pgq(name, consumer=None):
    if one('SELECT count(*) FROM pgq.queue WHERE queue_name = %s', (name,)):
        sql('SELECT pgq.drop_queue(%s, true)', (name,))
    sql('SELECT pgq.create_queue(%s)', (name,))
    if consumer:
        sql('SELECT pgq.register_consumer(%s, %s)', (name, consumer))


def pgq_count(name):
    return one("SELECT count(*) FROM pgq.event_%s" % one('SELECT queue_id FROM pgq.queue WHERE queue_name = %s', (name,)))


def create_topic(name, partitions, retention=None, segment_size=None):
    if one('SELECT count(*) FROM pgtopic.catalog_topics WHERE topic = %s', (name,)):
        sql('SELECT pgtopic.drop_topic(%s)', (name,))
    sql('SELECT pgtopic.create_topic(%s, %s, retention => %s::interval, segment_size => %s)',
        (name, partitions, retention, segment_size))


def topic_hw(name):
    return int(one('SELECT coalesce(sum(high_watermark - log_start_offset), 0) FROM pgtopic.partition_offsets(%s)', (name,)))


def topic_rows(name):
    tid = one('SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = %s', (name,))
    return one('SELECT count(*) FROM pgtopic_data.topic_%d' % tid)


def drop_all(topics=(), tables=(), pgqs=()):
    for t in topics:
        sql('SELECT pgtopic.drop_topic(%s)', (t,))
    for t in tables:
        sql('DROP TABLE IF EXISTS %s; DROP SEQUENCE IF EXISTS %s_seq' % (t, t), fetch=False)
    for q in pgqs:
        sql('SELECT pgq.drop_queue(%s, true)', (q,))


# ---------------------------------------------------------------------------------------------
# interleaved slices


def interleave(units):
    """units: list of (row, run_slice) where run_slice() -> (msgs, secs, lat). Runs CTX.rounds
    rounds of one slice each, the order rotated every round; sums into the rows. A CHECKPOINT
    before every slice: each slice starts alike (full-page images after a checkpoint)."""
    n = len(units)
    for r in range(CTX.rounds):
        order = units[r % n:] + units[:r % n]
        if r % 2 == 1:
            order = order[::-1]
        for rw, run in order:
            checkpoint()
            with Meter(rw):
                msgs, secs, lat = run()
            rw.msgs += msgs
            rw.secs += secs
            rw.lat.extend(lat)
    for rw, _ in units:
        show(rw)


def show(r, extra=''):
    say('  %-62s %9.0f msgs/s  p50 %7.2f  p99 %7.2f ms  %6.1f us CPU/msg  %6.0f B WAL/msg  %s'
        % (r.workload + ' / ' + r.system, r.rate, r.lat50(), r.lat99(), r.cpu_us, r.wal_per_msg, extra or r.note))


def pgbench_slice(script, clients, batch, prepared, defines=None):
    def run():
        n, secs, lat = pgbench(script, clients, seconds=CTX.slice_s, prepared=prepared, defines=defines)
        return n * batch, secs, lat
    return run


# ---------------------------------------------------------------------------------------------
# produce: one message per transaction


def group_single(size, clients, with_8p=True, gid='s'):
    tag = '%s%d_%dc' % (gid, size, clients)
    payload = payloads(size, 1)[0]
    t1, t8, q, pq, pl = 'bt_%s_1p' % tag, 'bt_%s_8p' % tag, 'bq_%s' % tag, 'bpgq_%s' % tag, 'bplain_%s' % tag
    create_topic(t1, 1)
    if with_8p:
        create_topic(t8, 8)
    create_queue_table(q)
    create_pgq(pq)
    create_plain_table(pl)
    s_t1 = render('pgtopic_produce.sql', tag + '_t1.sql', TOPIC=t1)
    s_t8 = render('pgtopic_produce.sql', tag + '_t8.sql', TOPIC=t8)
    s_q = render('queue_insert.sql', tag + '_q.sql', QUEUE=q)
    s_pq = render('pgq_insert.sql', tag + '_pgq.sql', QUEUE=pq)
    s_pl = render('plain_insert.sql', tag + '_plain.sql', TABLE=pl)
    d = {'payload': payload}
    sec = 'produce, 1 message per transaction'
    w = '1 msg/tx, %d client%s' % (clients, 's' if clients > 1 else '')
    keys = {}
    keys['t1'] = row('single_%d_%dc_1p' % (size, clients), sec, w + ', 1 partition', 'pgtopic', size, clients, 1)
    if with_8p:
        keys['t8'] = row('single_%d_%dc_8p' % (size, clients), sec, w + ', 8 partitions', 'pgtopic', size, clients, 8)
    keys['q'] = row('single_%d_%dc_queue' % (size, clients), sec, w + ', INSERT', 'SKIP LOCKED queue', size, clients)
    keys['pgq'] = row('single_%d_%dc_pgq' % (size, clients), sec, w + ', insert_event', 'PgQ', size, clients)
    keys['plain'] = row('single_%d_%dc_plain' % (size, clients), sec, w + ', INSERT', 'plain table', size, clients)
    base = [keys['q'].key, keys['pgq'].key, keys['plain'].key]
    keys['t1'].baselines = base
    units = [(keys['t1'], pgbench_slice(s_t1, clients, 1, True, d))]
    if with_8p:
        keys['t8'].baselines = base
        units.append((keys['t8'], pgbench_slice(s_t8, clients, 1, True, d)))
    units += [(keys['q'], pgbench_slice(s_q, clients, 1, True, d)),
              (keys['pgq'], pgbench_slice(s_pq, clients, 1, True, d)),
              (keys['plain'], pgbench_slice(s_pl, clients, 1, True, d))]
    interleave(units)
    # every acknowledged message is there, once
    check(keys['t1'], topic_rows(t1) == topic_hw(t1) >= keys['t1'].msgs,
          'stored rows %d = high watermark %d >= acknowledged %d' % (topic_rows(t1), topic_hw(t1), keys['t1'].msgs))
    if with_8p:
        check(keys['t8'], topic_rows(t8) == topic_hw(t8) >= keys['t8'].msgs,
              'stored rows %d = high watermarks %d >= acknowledged %d' % (topic_rows(t8), topic_hw(t8), keys['t8'].msgs))
    check(keys['q'], one('SELECT count(*) FROM %s' % q) >= keys['q'].msgs, 'queue rows >= acknowledged')
    check(keys['pgq'], pgq_count(pq) >= keys['pgq'].msgs, 'PgQ events >= acknowledged')
    drop_all([t1] + ([t8] if with_8p else []), [q, pl], [pq])


# ---------------------------------------------------------------------------------------------
# produce: batches


def group_batch(size, batch, clients, gid='b', kafka=False, sql_baselines=True):
    """kafka: librdkafka producers (as many as clients, acks=all, batches of `batch`) interleaved with
    the rest, into a topic of their own; sql_baselines=False: only produce_batch (bound) beside them."""
    tag = '%s%d_%d_%dc' % (gid, size, batch, clients)
    t1, q, pq, pl = 'bt_%s' % tag, 'bq_%s' % tag, 'bpgq_%s' % tag, 'bplain_%s' % tag
    tk = 'bk_%s' % tag
    kafka = kafka and CTX.kafka is None
    if kafka:
        create_topic(tk, 1)
        kafka_grant(tk, 'produce')
    if not sql_baselines:
        return group_batch_kafka_only(size, batch, clients, t1, tk, kafka)
    create_topic(t1, 1)
    create_queue_table(q)
    create_pgq(pq)
    create_plain_table(pl)
    s = batch_scripts(tag, size, batch, t1, q, pq, pl)
    sec = 'produce, batches'
    w = 'batch of %d, %d client%s' % (batch, clients, 's' if clients > 1 else '')
    r = {}
    r['pgtopic'] = row('batch_%d_%d_%dc' % (size, batch, clients), sec, w + ', produce_batch, bytea[] bound', 'pgtopic', size, clients, 1, batch)
    r['literal'] = row('batch_%d_%d_%dc_literal' % (size, batch, clients), sec, w + ', produce_batch, text[] literal', 'pgtopic', size, clients, 1, batch)
    r['copy'] = row('batch_%d_%d_%dc_copy' % (size, batch, clients), sec, w + ', COPY', 'plain table', size, clients, '', batch)
    r['insert'] = row('batch_%d_%d_%dc_insert' % (size, batch, clients), sec, w + ', multi-row INSERT', 'plain table', size, clients, '', batch)
    r['queue'] = row('batch_%d_%d_%dc_queue' % (size, batch, clients), sec, w + ', multi-row INSERT', 'SKIP LOCKED queue', size, clients, '', batch)
    r['queue_bound'] = row('batch_%d_%d_%dc_queue_bound' % (size, batch, clients), sec, w + ', INSERT unnest(bytea[] bound)', 'SKIP LOCKED queue', size, clients, '', batch)
    r['pgq'] = row('batch_%d_%d_%dc_pgq' % (size, batch, clients), sec, w + ', insert_event x %d' % batch, 'PgQ', size, clients, '', batch)
    r['pgtopic'].baselines = [r[k].key for k in ('copy', 'insert', 'queue', 'queue_bound', 'pgq')]
    r['literal'].baselines = [r[k].key for k in ('copy', 'insert', 'queue', 'pgq')]
    array = EncodedByteaArray([v.encode() for v in payloads(size, batch)])
    units = [(r['pgtopic'], bound_slice('SELECT pgtopic.produce_batch(%s::text, %s)', (t1, array), clients, batch)),
             (r['queue_bound'], bound_slice('INSERT INTO %s (payload) SELECT unnest(%%s)' % q, (array,), clients, batch))]
    units += [(r[k], pgbench_slice(s[k], clients, batch, False)) for k in ('literal', 'copy', 'insert', 'queue', 'pgq')]
    if kafka:
        r['kafka'] = kafka_produce_row(size, batch, clients, r['pgtopic'])
        units.append((r['kafka'], kafka_produce_slice(r['kafka'], tk, [v.encode() for v in payloads(size, batch)], clients)))
    interleave(units)
    if kafka:
        kafka_produce_check(r['kafka'], tk)
        drop_all([tk])
    produced = r['pgtopic'].msgs + r['literal'].msgs
    check(r['pgtopic'], topic_rows(t1) == topic_hw(t1) >= produced,
          'stored rows %d = high watermark %d >= acknowledged %d' % (topic_rows(t1), topic_hw(t1), produced))
    check(r['queue_bound'], one('SELECT count(*) FROM %s' % q) >= r['queue'].msgs + r['queue_bound'].msgs,
          'queue rows >= acknowledged')
    check(r['copy'], one('SELECT count(*) FROM %s' % pl) >= r['copy'].msgs + r['insert'].msgs, 'plain rows >= acknowledged')
    drop_all([t1], [q, pl], [pq])


def kafka_produce_row(size, batch, clients, base):
    w = 'batch of %d, %d producer%s, Kafka Produce acks=all (librdkafka)' % (batch, clients, 's' if clients > 1 else '')
    rk = row('batch_%d_%d_%dc_kafka' % (size, batch, clients), 'produce, batches', w, 'pgtopic (Kafka)', size,
             clients, 1, batch)
    rk.baselines = [base.key]
    rk.lat_label = ''
    return rk


def group_batch_kafka_only(size, batch, clients, t1, tk, kafka):
    """`only kafka`: the Kafka producers beside produce_batch (bytea[] bound) alone."""
    create_topic(t1, 1)
    w = 'batch of %d, %d client%s' % (batch, clients, 's' if clients > 1 else '')
    rp = row('batch_%d_%d_%dc' % (size, batch, clients), 'produce, batches', w + ', produce_batch, bytea[] bound',
             'pgtopic', size, clients, 1, batch)
    array = EncodedByteaArray([v.encode() for v in payloads(size, batch)])
    units = [(rp, bound_slice('SELECT pgtopic.produce_batch(%s::text, %s)', (t1, array), clients, batch))]
    if kafka:
        rk = kafka_produce_row(size, batch, clients, rp)
        units.append((rk, kafka_produce_slice(rk, tk, [v.encode() for v in payloads(size, batch)], clients)))
    interleave(units)
    check(rp, topic_rows(t1) == topic_hw(t1) >= rp.msgs,
          'stored rows %d = high watermark %d >= acknowledged %d' % (topic_rows(t1), topic_hw(t1), rp.msgs))
    if kafka:
        kafka_produce_check(rk, tk)
        drop_all([tk])
    drop_all([t1])


# ---------------------------------------------------------------------------------------------
# drains of a backlog


def fill_payload_table():
    sql('DROP TABLE IF EXISTS bench_payloads; CREATE TABLE bench_payloads (size integer, i integer, v text, '
        'PRIMARY KEY (size, i))', fetch=False)
    conn = connect(autocommit=False)
    cur = conn.cursor()
    for size in (100, 1024):
        for i, v in enumerate(payloads(size)):
            cur.execute('INSERT INTO bench_payloads VALUES (%s, %s, %s)', (size, i, v))
    conn.commit()
    conn.close()


@contextlib.contextmanager
def collector_off():
    """For a timed drain loop: Python's cycle collector is off inside it. The drivers keep each
    batch's offsets or ids and check them after the clock stops (the checker's work is not timed);
    with a million kept rows, the collector's passes stalled the loop (p99 92 ms per call)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


class RssSampler:
    """Samples a backend's RssAnon while a drain runs (same process, between calls)."""

    def __init__(self, pid):
        self.pid, self.samples, self.last = pid, [], 0.0

    def sample(self, force=False):
        now = time.monotonic()
        if force or now - self.last >= 0.25:
            self.samples.append(rss_anon_kb(self.pid))
            self.last = now


def member_proc(topic, group, expected, max_messages, barrier, total, result_q, deadline_s):
    """One consumer-group member: consumes until the group has drained `expected` messages."""
    conn = connect(app='bench-member')
    cur = conn.cursor()
    cur.execute('SELECT pg_backend_pid()')
    pid = cur.fetchone()[0]
    rss = RssSampler(pid)
    stats = {}   # partition -> [count, sum of offsets, last offset, out_of_order]
    lat = []
    nbytes = 0
    barrier.wait()
    t0 = time.monotonic()
    rss.sample(True)
    batches = []   # checked after the clock stops (collector_off)
    with collector_off():
        while True:
            c0 = time.monotonic()
            cur.execute('SELECT "partition", msg_offset, value FROM pgtopic.consume(%s, %s, %s)',
                        (topic, group, max_messages))
            rows = cur.fetchall()
            c1 = time.monotonic()
            rss.sample()
            if rows:
                lat.append((c1 - c0) * 1000)
                parts, offs, values = zip(*rows)   # C-speed: the values themselves are not kept
                batches.append((parts, offs))
                nbytes += sum(map(len, values))
                with total.get_lock():
                    total.value += len(rows)
            elif total.value >= expected:
                break
            if c1 - t0 > deadline_s:
                break
        t1 = time.monotonic()
    rss.sample(True)
    conn.close()
    for parts, offs in batches:
        for p, o in zip(parts, offs):
            s = stats.setdefault(p, [0, 0, -1, 0])
            if o <= s[2]:
                s[3] += 1
            s[0] += 1
            s[1] += o
            s[2] = o
    result_q.put({'t0': t0, 't1': t1, 'stats': stats, 'lat': lat, 'bytes': nbytes, 'rss': rss.samples})


def drain_pgtopic(r, topic, group, members, expected, max_messages=1000, deadline_s=300):
    barrier = mp.Barrier(members)
    total = mp.Value('q', 0)
    q = mp.Queue()
    procs = [mp.Process(target=member_proc, args=(topic, group, expected, max_messages, barrier, total, q, deadline_s))
             for _ in range(members)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    t0 = min(x['t0'] for x in results)
    t1 = max(x['t1'] for x in results)
    merged = {}
    for x in results:
        for p, s in x['stats'].items():
            m = merged.setdefault(p, [0, 0, 0])
            m[0] += s[0]
            m[1] += s[1]
            m[2] += s[3]
        r.lat.extend(x['lat'])
    got = sum(m[0] for m in merged.values())
    r.msgs += got
    r.secs += t1 - t0
    r.lat_label = 'call'
    # correctness: every message exactly once, in offset order within each member's stretch
    hw = {p: h for p, h in sql('SELECT "partition", high_watermark FROM pgtopic.partition_offsets(%s)', (topic,))}
    exact = all(merged.get(p, [0, 0])[0] == h and merged.get(p, [0, 0])[1] == h * (h - 1) // 2 for p, h in hw.items())
    check(r, got == expected and exact, '%d consumed of %d produced; each offset exactly once: %s' % (got, expected, exact))
    check(r, sum(m[2] for m in merged.values()) == 0, 'offsets in order within each partition')
    lag = one('SELECT coalesce(sum(lag), -1) FROM pgtopic.consumer_lag WHERE topic = %s AND group_name = %s', (topic, group))
    check(r, lag == 0, 'committed: consumer_lag = %s' % lag)
    rss = [s for x in results for s in x['rss'] if s >= 0]
    first = [x['rss'][0] for x in results if x['rss']]
    if rss:
        r.note = 'backend RssAnon %d->%d kB' % (max(first), max(rss))
        r.rss = (max(first), max(rss))


def drain_queue(r, table, expected, batch=1000, deadline_s=20):
    conn = connect()
    cur = conn.cursor()
    cur.execute('SELECT pg_backend_pid()')
    rss = RssSampler(cur.fetchone()[0])
    got, last, ordered = 0, 0, True
    batches = []   # checked after the clock stops (collector_off)
    with collector_off():
        t0 = time.monotonic()
        while True:
            c0 = time.monotonic()
            cur.execute('DELETE FROM %s WHERE id IN (SELECT id FROM %s ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED) '
                        'RETURNING id, payload' % (table, table, batch))
            rows = cur.fetchall()
            c1 = time.monotonic()
            rss.sample()
            if not rows:
                break
            r.lat.append((c1 - c0) * 1000)
            got += len(rows)
            batches.append(next(zip(*rows)))   # the ids only
            if c1 - t0 > deadline_s:
                break
        t1 = time.monotonic()
    conn.close()
    for ids in batches:
        for i in sorted(ids):
            ordered &= i > last
            last = i
    r.msgs += got
    r.secs += t1 - t0
    r.lat_label = 'call'
    left = one('SELECT count(*) FROM %s' % table)
    check(r, got + left == expected and ordered, 'deleted %d + left %d = %d produced; ids increasing: %s'
          % (got, left, expected, ordered))
    if got < expected:
        r.note = 'time-limited: %d of %d in %.0f s' % (got, expected, t1 - t0)


def drain_pgq(r, queue, consumer, expected, deadline_s=300):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    got, nbatches, ids = 0, 0, set()
    dup, batches = 0, []   # events are checked after the clock stops (collector_off)
    with collector_off():
        t0 = time.monotonic()
        while True:
            c0 = time.monotonic()
            cur.execute('SELECT pgq.next_batch(%s, %s)', (queue, consumer))
            bid = cur.fetchone()[0]
            if bid is None:
                conn.commit()
                if got >= expected or time.monotonic() - t0 > deadline_s:
                    break
                cur.execute('SELECT pgq.ticker(%s)', (queue,))
                conn.commit()
                continue
            cur.execute('SELECT ev_id, ev_data FROM pgq.get_batch_events(%s)', (bid,))
            rows = cur.fetchall()
            cur.execute('SELECT pgq.finish_batch(%s)', (bid,))
            conn.commit()
            c1 = time.monotonic()
            nbatches += 1
            if rows:
                r.lat.append((c1 - c0) * 1000)
            got += len(rows)
            if rows:
                batches.append(next(zip(*rows)))   # the ids only
        t1 = time.monotonic()
    conn.close()
    for batch_ids in batches:
        for i in batch_ids:
            if i in ids:
                dup += 1
            ids.add(i)
    r.msgs += got
    r.secs += t1 - t0
    r.lat_label = 'batch'
    check(r, got == expected and dup == 0, '%d events in %d batches of %d produced; duplicates %d'
          % (got, nbatches, expected, dup))


def scan_plain(r, table, partitions, per_partition, chunk=1000):
    conn = connect()
    cur = conn.cursor()
    cur.execute('PREPARE scan(integer, bigint) AS SELECT msg_offset, value FROM %s WHERE "partition" = $1 '
                'AND msg_offset >= $2 AND msg_offset < $2 + %d ORDER BY msg_offset' % (table, chunk))
    got = 0
    t0 = time.monotonic()
    for p in range(partitions):
        for start in range(0, per_partition[p], chunk):
            c0 = time.monotonic()
            cur.execute('EXECUTE scan(%s, %s)', (p, start))
            rows = cur.fetchall()
            r.lat.append((time.monotonic() - c0) * 1000)
            got += len(rows)
    t1 = time.monotonic()
    conn.close()
    r.msgs += got
    r.secs += t1 - t0
    r.lat_label = 'call'
    check(r, got == sum(per_partition.values()), 'scanned %d rows' % got)


def group_drain(size, backlog, members_list=(1, 4), baselines=True, queue_deadline=20, kafka=False):
    sec = 'consume: drain of a backlog'
    w = 'drain %s msgs' % ('{:,}'.format(backlog))
    topic = 'bd_%d' % size
    create_topic(topic, 8)
    fill_script = render('pgtopic_fill.sql', 'fill_%d.sql' % size, TOPIC=topic, SIZE=size)
    calls = backlog // 1000
    say('  filling %s with %d messages (produce_batch of 1000, 2 clients)' % (topic, backlog))
    secs = timed(lambda: pgbench(fill_script, 2, transactions=calls // 2, prepared=False, latencies=False))
    say('  ... %.1f s (%.0f msgs/s)' % (secs, backlog / secs))
    sql('SELECT count(*) FROM pgtopic_data.%s' % one("SELECT 'topic_' || topic_id FROM pgtopic.catalog_topics WHERE topic = %s", (topic,)))
    rows_m = {}
    for m in members_list:
        key = 'drain_%d_%dm' % (size, m)
        rows_m[m] = row(key, sec, w + ', 8 partitions, %d member%s' % (m, 's' if m > 1 else ''), 'pgtopic', size, m, 8, 1000)
    checkpoint()
    for m in members_list:
        with Meter(rows_m[m]):
            drain_pgtopic(rows_m[m], topic, 'g%d' % m, m, backlog)
        show(rows_m[m])
    if 4 in rows_m and 1 in rows_m:
        rows_m[4].baselines = [rows_m[1].key]
    if kafka and CTX.kafka is None:
        # the same backlog over the Kafka protocol: Fetch of the 8 partitions from offset 0
        kafka_grant(topic, 'consume')
        for kind in ('librdkafka', 'kcat'):
            rk = row('drain_%d_kafka_%s' % (size, kind), sec, w + ', 8 partitions, Kafka Fetch, ' +
                     ('librdkafka consumer, assign()' if kind == 'librdkafka' else 'kcat -C -e -o beginning'),
                     'pgtopic (Kafka)', size, 1, 8, '')
            rk.baselines = [rows_m[1].key] if 1 in rows_m else []
            checkpoint()
            with Meter(rk):
                if kind == 'librdkafka':
                    kafka_fetch_ck(rk, topic, 8, backlog)
                else:
                    kafka_fetch_kcat(rk, topic, backlog)
            show(rk)
    per_part = {p: h for p, h in sql('SELECT "partition", high_watermark FROM pgtopic.partition_offsets(%s)', (topic,))}
    if baselines:
        # the physical limit: the same rows in a plain table, read by primary-key range scans
        pl = 'bplain_drain_%d' % size
        create_plain_table(pl)
        sql('INSERT INTO %s SELECT * FROM pgtopic_data.%s' % (pl, one("SELECT 'topic_' || topic_id FROM pgtopic.catalog_topics WHERE topic = %s", (topic,))), fetch=False)
        sql('VACUUM ANALYZE %s' % pl, fetch=False)
        rp = row('drain_%d_scan' % size, sec, w + ', index range scans of 1000', 'plain table', size, 1, 8, 1000)
        with Meter(rp):
            scan_plain(rp, pl, 8, per_part)
        show(rp)
        drop_all(tables=[pl])

        # PgQ: 1000 events per transaction, a tick after each (batches of about 1000)
        pq = 'bpgq_drain_%d' % size
        create_pgq(pq, 'c')
        s = render('pgq_fill.sql', 'pgq_fill_%d.sql' % size, QUEUE=pq, SIZE=size)
        say('  filling PgQ %s with %d events' % (pq, backlog))
        secs = timed(lambda: pgbench(s, 1, transactions=calls, prepared=False, latencies=False))
        say('  ... %.1f s (%.0f msgs/s)' % (secs, backlog / secs))
        sql('SELECT pgq.ticker(%s)', (pq,))
        sql('SELECT count(*) FROM pgq.event_%s' % one('SELECT queue_id FROM pgq.queue WHERE queue_name = %s', (pq,)))
        rq = row('drain_%d_pgq' % size, sec, w + ', next_batch/get_batch_events/finish_batch', 'PgQ', size, 1, '', 1000)
        checkpoint()
        with Meter(rq):
            drain_pgq(rq, pq, 'c', backlog)
        show(rq)
        drop_all(pgqs=[pq])

        # SKIP LOCKED queue: DELETE ... RETURNING of the oldest 1000
        qt = 'bq_drain_%d' % size
        create_queue_table(qt)
        say('  filling queue %s with %d rows' % (qt, backlog))
        secs = timed(lambda: sql('INSERT INTO %s (payload) SELECT convert_to(p.v, \'UTF8\') FROM generate_series(1, %d) g, '
                                 'bench_payloads p WHERE p.size = %d ORDER BY g, p.i' % (qt, backlog // 1000, size), fetch=False))
        say('  ... %.1f s' % secs)
        sql('VACUUM ANALYZE %s' % qt, fetch=False)
        rqu = row('drain_%d_queue' % size, sec, w + ', DELETE 1000 ... SKIP LOCKED RETURNING', 'SKIP LOCKED queue', size, 1, '', 1000)
        checkpoint()
        with Meter(rqu):
            drain_queue(rqu, qt, backlog, deadline_s=queue_deadline)
        show(rqu)
        drop_all(tables=[qt])
        if 1 in rows_m:
            rows_m[1].baselines = [rq.key, rqu.key, rp.key]
    drop_all([topic])


# ---------------------------------------------------------------------------------------------
# end-to-end latency at a fixed rate; LISTEN


def producer_proc(topic, k, nprod, n, rate, payload, t0, result_q):
    conn = connect(app='bench-producer')
    cur = conn.cursor()
    out = []
    for i in range(k, n, nprod):
        target = t0 + i / rate
        now = time.monotonic()
        if target > now:
            time.sleep(target - now)
        ts = time.monotonic()
        cur.execute('SELECT 1 FROM pgtopic.produce(%s, %s::bytea, key => %s)', (topic, payload, str(i)))
        cur.fetchall()
        out.append((i, ts, time.monotonic()))
    conn.close()
    result_q.put(('p', out))


def consumer_proc(topic, group, n, ready, stop_at, result_q):
    conn = connect(app='bench-consumer')
    cur = conn.cursor()
    cur.execute('SELECT count(*) FROM pgtopic.consume(%s, %s, 1000)', (topic, group))  # join
    cur.execute('SELECT pg_backend_pid()')
    pid = cur.fetchone()[0]
    ready.set()
    got = {}
    calls = 0
    rss = [rss_anon_kb(pid)]
    while len(got) < n and time.monotonic() < stop_at:
        cur.execute('SELECT key FROM pgtopic.consume(%s, %s, 1000, wait_ms => 1000)', (topic, group))
        rows = cur.fetchall()
        t = time.monotonic()
        calls += 1
        for (key,) in rows:
            got.setdefault(int(key), t)
    rss.append(rss_anon_kb(pid))
    conn.close()
    result_q.put(('c', got, calls, rss))


def listener_proc(conns_n, ready, stop, result_q, topic=None):
    conns = []
    for _ in range(conns_n):
        c = connect(app='bench-listener')
        c.cursor().execute('LISTEN pgtopic')
        conns.append(c)
    ready.set()
    times = []
    counts = [0] * conns_n
    fds = {c.fileno(): j for j, c in enumerate(conns)}
    while not stop.is_set():
        rd, _, _ = select.select(list(fds), [], [], 0.2)
        t = time.monotonic()
        for fd in rd:
            j = fds[fd]
            c = conns[j]
            c.poll()
            while c.notifies:
                n = c.notifies.pop(0)
                counts[j] += 1
                if j == 0 and (topic is None or n.payload == topic):
                    times.append(t)
    for c in conns:
        c.close()
    result_q.put(('l', times, counts))


def group_latency(rate, seconds, size=100):
    sec = 'end-to-end latency'
    topic = 'blat'
    create_topic(topic, 1)
    n = int(rate * seconds)
    payload = payloads(size, 1)[0].encode()
    q = mp.Queue()
    ready_c, ready_l, stop = mp.Event(), mp.Event(), mp.Event()
    t0 = time.monotonic() + 1.0
    cons = mp.Process(target=consumer_proc, args=(topic, 'lat', n, ready_c, t0 + seconds + 15, q))
    lis = mp.Process(target=listener_proc, args=(1, ready_l, stop, q, topic))
    cons.start()
    lis.start()
    ready_c.wait()
    ready_l.wait()
    t0 = time.monotonic() + 0.5
    nprod = 2
    prods = [mp.Process(target=producer_proc, args=(topic, k, nprod, n, rate, payload, t0, q)) for k in range(nprod)]
    for p in prods:
        p.start()
    sent = []
    got = calls = times = None
    rss = None
    for _ in range(nprod + 1):
        x = q.get()
        if x[0] == 'p':
            sent += x[1]
        else:
            _, got, calls, rss = x
    time.sleep(0.2)
    stop.set()
    x = q.get()
    times = x[1]
    for p in prods + [cons, lis]:
        p.join()
    sent.sort()
    span = max(s[2] for s in sent) - t0
    rc = row('latency_consume', sec, '%d msgs/s, 1 msg/tx (2 producers), consume(wait_ms => 1000)' % rate, 'pgtopic', size, 1, 1)
    rl = row('latency_listen', sec, '%d msgs/s, 1 msg/tx (2 producers), LISTEN pgtopic' % rate, 'pgtopic', size, 1, 1)
    ra = row('latency_commit', sec, '%d msgs/s, 1 msg/tx (2 producers), produce + COMMIT' % rate, 'pgtopic', size, 2, 1)
    from_send = [(got[i] - ts) * 1000 for i, ts, ta in sent if i in got]
    from_ack = [(got[i] - ta) * 1000 for i, ts, ta in sent if i in got]
    ack = [(ta - ts) * 1000 for i, ts, ta in sent]
    lis_lat = []
    for i, ts, ta in sent:
        j = bisect.bisect_left(times, ta)
        if j < len(times):
            lis_lat.append((times[j] - ta) * 1000)
    for r_, lat in ((rc, from_ack), (rl, lis_lat), (ra, ack)):
        r_.msgs, r_.secs, r_.lat, r_.lat_label = len(sent), span, lat, 'msg'
    rc.note = 'from the producer\'s commit ack; from its send: p50 %.2f p99 %.2f ms; %d calls' % (
        pct(from_send, 50), pct(from_send, 99), calls)
    rl.note = 'from the producer\'s commit ack to the first notification after it; %d notifications' % len(times)
    ra.note = 'producer: send to commit acknowledged'
    check(rc, len(got) == n, 'consumer received %d of %d messages' % (len(got), n))
    check(rc, span < seconds * 1.1 + 1, 'producers kept the rate: %d msgs in %.1f s' % (n, span))
    check(rl, len(lis_lat) >= n * 0.99, 'a notification followed %d of %d commits' % (len(lis_lat), n))
    for r_ in (rc, rl, ra):
        say('  %-58s p50 %7.2f ms  p99 %7.2f ms  %s' % (r_.workload, r_.lat50(), r_.lat99(), r_.note))
    drop_all([topic])
    return rc, rl


def group_listeners(listeners, clients=4, size=100):
    sec = 'wake-ups: producers with LISTEN clients'
    topic = 'blisten'
    create_topic(topic, 1)
    script = render('pgtopic_produce.sql', 'listen_produce.sql', TOPIC=topic)
    d = {'payload': payloads(size, 1)[0]}
    r0 = row('listen_0', sec, '1 msg/tx, %d clients, no listener' % clients, 'pgtopic', size, clients, 1)
    r1 = row('listen_%d' % listeners, sec, '1 msg/tx, %d clients, %d LISTEN clients' % (clients, listeners), 'pgtopic', size, clients, 1)
    r1.baselines = [r0.key]
    counts_all = []

    def with_listeners():
        q = mp.Queue()
        ready, stop = mp.Event(), mp.Event()
        p = mp.Process(target=listener_proc, args=(listeners, ready, stop, q))
        p.start()
        ready.wait()
        n, secs, lat = pgbench(script, clients, seconds=CTX.slice_s, prepared=True, defines=d)
        time.sleep(0.1)
        stop.set()
        _, _, counts = q.get()
        p.join()
        counts_all.append(counts)
        return n, secs, lat

    interleave([(r0, pgbench_slice(script, clients, 1, True, d)), (r1, with_listeners)])
    mins = [min(c) for c in counts_all]
    check(r1, all(m > 0 for m in mins), 'every listener got notifications (fewest per slice: %s)' % mins)
    r1.note = 'notifications per listener per slice: %s' % ', '.join('%d-%d' % (min(c), max(c)) for c in counts_all)
    drop_all([topic])


# ---------------------------------------------------------------------------------------------
# soak: produce + consume with retention


def soak(seconds, interval=10):
    topic = 'bsoak'
    create_topic(topic, 4, retention='1 minute', segment_size=20000)
    script = render('pgtopic_produce_batch.sql', 'soak_produce.sql', TOPIC=topic,
                    ARRAY='{' + ','.join(payloads(100, 100)) + '}')
    say('soak: 2 producers (produce_batch of 100) and 1 consumer (consume 1000, wait_ms 100) for %d s, '
        'retention 1 minute, 4 partitions, segments of 20000 offsets' % seconds)
    q = mp.Queue()
    stop = mp.Event()
    cnt = mp.Value('q', 0)
    pidv = mp.Value('i', 0)

    def consumer(stop, cnt, pidv):
        conn = connect(app='bench-soak-consumer')
        cur = conn.cursor()
        cur.execute('SELECT pg_backend_pid()')
        pidv.value = cur.fetchone()[0]
        while not stop.is_set():
            cur.execute('SELECT count(*) FROM pgtopic.consume(%s, %s, 1000, wait_ms => 100)', (topic, 'soak'))
            n = cur.fetchone()[0]
            with cnt.get_lock():
                cnt.value += n
        conn.close()

    cp = mp.Process(target=consumer, args=(stop, cnt, pidv))
    cp.start()
    logdir = os.path.join(CTX.gen, 'soak')
    os.makedirs(logdir, exist_ok=True)
    prod = subprocess.Popen(['pgbench', '-n', '-h', CTX.host, '-p', str(CTX.port), '-U', 'postgres', '-M', 'simple',
                             '-c', '2', '-j', '2', '-T', str(seconds), '-f', script, CTX.db],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=logdir)
    t0 = time.monotonic()
    samples = []
    last_hw, last_c, last_t = 0, 0, t0
    conn = connect(app='bench-soak-sampler')
    cur = conn.cursor()
    while prod.poll() is None:
        time.sleep(max(0.0, t0 + (len(samples) + 1) * interval - time.monotonic()))
        t = time.monotonic()
        cur.execute('SELECT sum(high_watermark)::bigint, sum(high_watermark - log_start_offset)::bigint FROM pgtopic.partition_offsets(%s)', (topic,))
        hw, kept = cur.fetchone()
        cur.execute('SELECT bytes FROM pgtopic.topics WHERE topic = %s', (topic,))
        nbytes = cur.fetchone()[0]
        cur.execute('SELECT coalesce(sum(lag), 0)::bigint FROM pgtopic.consumer_lag WHERE topic = %s', (topic,))
        lag = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'topic\\_' || (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = %s) || '\\_p%%\\_s%%'", (topic,))
        segs = cur.fetchone()[0]
        c = cnt.value
        dt = t - last_t
        s = {'t': t - t0, 'produced': (hw - last_hw) / dt, 'consumed': (c - last_c) / dt, 'bytes': nbytes,
             'kept': kept, 'lag': lag, 'segments': segs, 'rss': rss_anon_kb(pidv.value)}
        samples.append(s)
        say('  %5.0f s  produced %8.0f/s  consumed %8.0f/s  topic %7.1f MB (%d segments, %d msgs kept)  lag %7d  consumer RssAnon %d kB'
            % (s['t'], s['produced'], s['consumed'], nbytes / MB, segs, kept, lag, s['rss']))
        last_hw, last_c, last_t = hw, c, t
    out = prod.stdout.read()
    stop.set()
    cp.join()
    conn.close()
    return samples, out


# ---------------------------------------------------------------------------------------------
# profiles (perf, software cpu-clock event: works without hardware counters)


def backend_pid(app, timeout=10):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        rows = sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state IS NOT NULL", (app,))
        if rows:
            return rows[0][0]
        time.sleep(0.1)
    raise RuntimeError('no backend for %s' % app)


def perf_backend(name, pid, seconds):
    data = os.path.join(CTX.gen, 'perf-%s.data' % name)
    subprocess.run(['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', str(pid), '-o', data, '--',
                    'sleep', str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rep = lambda *a: subprocess.run(['perf', 'report', '-i', data, '--stdio', '--no-children', '-g', 'none',
                                     '--percent-limit', '0.7'] + list(a), stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True).stdout
    by_dso = [l for l in rep('--sort', 'dso').splitlines() if l.strip() and not l.startswith('#')]
    by_sym = [l for l in rep('--sort', 'dso,symbol').splitlines() if l.strip() and not l.startswith('#')]
    children = rep('--children', '--sort', 'symbol', '--percent-limit', '2').splitlines()
    skip = ('0x0000', 'PostmasterMain', '__libc_start', ' main ', 'PostgresMain', 'BackendRun', 'ServerLoop',
            'BackendStartup', '_start')
    inc = []
    for l in children:
        if not l.strip() or l.startswith('#') or any(x in l for x in skip):
            continue
        l = re.sub(r'pgtopic::pg_call<.*', 'pgtopic::pg_call<...>', l)
        inc.append(re.sub(r'\s+-\s+-\s*$', '', l)[:140])
    by_sym = [re.sub(r'\s+-\s+-\s*$', '', l) for l in by_sym]
    text = ['== %s (backend %d, %d s of cpu-clock samples)' % (name, pid, seconds), '-- by object:'] + by_dso[:8] + \
           ['-- by function, self (postgres has no symbols for static functions: hex addresses):'] + by_sym[:25] + \
           ['-- by function, with callees (frame pointers: complete inside pgtopic.so, partial in postgres):'] + \
           inc[:40] + ['']
    return '\n'.join(text)


def profile(seconds=8):
    if shutil.which('perf') is None:
        say('profile: perf is not installed (linux-perf)')
        return
    out = []
    topic = 'bprof'
    create_topic(topic, 1)
    pay = payloads(100, 1)[0]
    single = render('pgtopic_produce.sql', 'prof_single.sql', TOPIC=topic)
    batch = render('pgtopic_produce_batch.sql', 'prof_batch.sql', TOPIC=topic, ARRAY='{' + ','.join(payloads(100, 1000)) + '}')
    for name, script, prepared in (('produce 1 msg/tx', single, True), ('produce_batch 1000', batch, False)):
        env = dict(os.environ, PGAPPNAME='bench-prof')
        p = subprocess.Popen(['pgbench', '-n', '-h', CTX.host, '-p', str(CTX.port), '-U', 'postgres', '-M',
                              'prepared' if prepared else 'simple', '-c', '1', '-T', str(seconds + 3), '-f', script,
                              '-D', 'payload=' + pay, CTX.db], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pid = backend_pid('bench-prof')
        time.sleep(1)
        out.append(perf_backend(name.replace(' ', '_').replace('/', ''), pid, seconds))
        o = p.communicate()[0]
        out[-1] += '\n' + '\n'.join(l for l in o.splitlines() if 'tps' in l or 'latency' in l) + '\n'
    # consume: drain a backlog with one consumer
    create_topic('bprofd', 8)
    fill = render('pgtopic_fill.sql', 'prof_fill.sql', TOPIC='bprofd', SIZE=100)
    pgbench(fill, 2, transactions=250, prepared=False, latencies=False)
    stop = mp.Event()

    def drain(stop):
        conn = connect(app='bench-prof-consumer')
        cur = conn.cursor()
        while not stop.is_set():
            cur.execute('SELECT "partition", msg_offset, value FROM pgtopic.consume(%s, %s, 1000)', ('bprofd', 'prof'))
            if not cur.fetchall():
                break
        conn.close()
    dp = mp.Process(target=drain, args=(stop,))
    dp.start()
    pid = backend_pid('bench-prof-consumer')
    out.append(perf_backend('consume_1000', pid, min(seconds, 5)))
    stop.set()
    dp.join()
    drop_all(['bprof', 'bprofd'])
    text = '\n'.join(out)
    with open(os.path.join(CTX.out, 'profile.txt'), 'w') as f:
        f.write(text)
    say(text)


# ---------------------------------------------------------------------------------------------
# report


def fmt_rate(x):
    return '{:,.0f}'.format(x)


def write_report(path, header, targets):
    lines = list(header)
    cols = ('#', 'section / workload', 'system', 'payload', 'msgs/s', 'MB/s', 'p50 ms', 'p99 ms', 'per',
            'CPU us/msg', 'WAL B/msg')
    table = []
    idx = {}
    sec = None
    for n, k in enumerate(ORDER, 1):
        r = ROWS[k]
        idx[k] = n
        if r.section != sec:
            table.append(('', '[%s]' % r.section) + ('',) * (len(cols) - 2))
            sec = r.section
        rate = fmt_rate(r.rate) if r.section != 'end-to-end latency' else ''
        mbps = '%.1f' % r.mbps if rate else ''
        table.append((str(n), r.workload, r.system, '%d B' % r.payload, rate, mbps,
                      '%.2f' % r.lat50() if r.lat or r.p50 is not None else '',
                      '%.2f' % r.lat99() if r.lat or r.p99 is not None else '', r.lat_label,
                      '%.1f' % r.cpu_us if r.cpu_s else '', '%.0f' % r.wal_per_msg if r.wal_b else ''))
    w = [max(len(t[i]) for t in table + [cols]) for i in range(len(cols))]
    fmt = lambda t: ' | '.join((t[i].rjust(w[i]) if i in (0, 3, 4, 5, 6, 7, 9, 10) else t[i].ljust(w[i])) for i in range(len(cols)))
    lines.append(fmt(cols))
    lines.append('-+-'.join('-' * x for x in w))
    lines += [fmt(t) for t in table]
    lines.append('')
    lines.append('Ratios, pgtopic row / baseline row: msgs/s (and server CPU per message, baseline / pgtopic: '
                 'above 1 means pgtopic spends less CPU per message):')
    for k in ORDER:
        r = ROWS[k]
        if r.baselines:
            parts = ['%.2fx (CPU %.2fx) #%d %s' % (r.rate / ROWS[b].rate if ROWS[b].rate else float('nan'),
                                                  ROWS[b].cpu_us / r.cpu_us if r.cpu_s and ROWS[b].cpu_s else float('nan'),
                                                  idx[b], ROWS[b].system if ROWS[b].system != 'pgtopic'
                                                  else ', '.join(ROWS[b].workload.split(', ')[-2:]))
                     for b in r.baselines if b in ROWS]
            lines.append('  #%-3d %s' % (idx[k], r.workload))
            lines.append('         ' + ';  '.join(parts))
    lines.append('')
    lines.append('Targets:')
    for t in targets:
        lines.append('  ' + t)
    lines.append('')
    lines.append('Notes and checks:')
    for k in ORDER:
        r = ROWS[k]
        bits = ([r.note] if r.note else []) + ['%s %s' % ('ok' if ok else 'FAILED', txt) for ok, txt in r.checks]
        if bits:
            lines.append('  #%-3d %s' % (idx[k], '; '.join(bits)))
    text = '\n'.join(lines) + '\n'
    with open(path, 'w') as f:
        f.write(text)
    return text, idx


def targets_eval():
    out = []

    def ratio(a, b):
        return ROWS[a].rate / ROWS[b].rate if a in ROWS and b in ROWS and ROWS[b].rate else None

    def line(name, value, goal, ok_fn, unit='x'):
        if value is None:
            out.append('%-78s  not measured' % name)
            return
        ok = ok_fn(value)
        out.append('%-78s %7.2f%s  (goal %s)  %s' % (name, value, unit, goal,
                                                    'MET' if ok else 'MISSED by %s' % miss(value, goal, unit)))

    def miss(value, goal, unit):
        g = float(re.search(r'[\d.]+', goal).group(0))
        if goal.startswith('>='):
            return '%.0f%%' % ((g - value) / g * 100)
        return '%.2f %s' % (value - g, unit.strip())

    for size in (100, 1024):
        line('produce_batch(1000), 4 clients, %d B: vs COPY of the same rows' % size,
             ratio('batch_%d_1000_4c' % size, 'batch_%d_1000_4c_copy' % size), '>= 0.9x', lambda v: v >= 0.9)
        line('1 msg/tx, 4 clients, 1 partition, %d B: vs SKIP LOCKED queue INSERT' % size,
             ratio('single_%d_4c_1p' % size, 'single_%d_4c_queue' % size), '>= 1.0x', lambda v: v >= 1.0)
        if 'drain_%d_1m' % size in ROWS:
            line('drain, 1 consumer, %d B: vs PgQ drain' % size, ratio('drain_%d_1m' % size, 'drain_%d_pgq' % size),
                 '>= 1.0x', lambda v: v >= 1.0)
            line('drain, 1 consumer, %d B: vs SKIP LOCKED read+delete' % size,
                 ratio('drain_%d_1m' % size, 'drain_%d_queue' % size), '>= 5x', lambda v: v >= 5.0)
            line('drain, 4 members vs 1 member, %d B' % size, ratio('drain_%d_4m' % size, 'drain_%d_1m' % size),
                 '>= 1.5x', lambda v: v >= 1.5)
    if 'latency_consume' in ROWS:
        r = ROWS['latency_consume']
        line('end-to-end at 1,000 msgs/s, consume(wait_ms): p50', r.lat50(), '<= 2 ms', lambda v: v <= 2, ' ms')
        line('end-to-end at 1,000 msgs/s, consume(wait_ms): p99', r.lat99(), '<= 10 ms', lambda v: v <= 10, ' ms')
    lk = [k for k in ROWS if k.startswith('listen_') and k != 'listen_0']
    if lk:
        line('4 producers with %s LISTEN clients vs none' % lk[0].split('_')[1], ratio(lk[0], 'listen_0'), '>= 0.9x',
             lambda v: v >= 0.9)
    for size in (100, 1024):
        r = ROWS.get('drain_%d_1m' % size)
        if r is not None and hasattr(r, 'rss'):
            line('consumer backend RssAnon growth while draining the backlog, %d B' % size, (r.rss[1] - r.rss[0]) / 1024.0,
                 '<= 16 MB', lambda v: v <= 16, ' MB')
    return out


def chart(outdir, idx):
    dat = os.path.join(outdir, 'chart.dat')
    colors = {'pgtopic': 1, 'plain table': 2, 'SKIP LOCKED queue': 3, 'PgQ': 4, 'pgtopic (Kafka)': 7}
    with open(dat, 'w') as f:
        for k in ORDER:
            r = ROWS[k]
            if r.section == 'end-to-end latency':
                continue
            label = '#%d %s %s %dB' % (idx[k], r.system, r.workload, r.payload)
            label = label.replace('"', "'")
            f.write('%d "%s" %.1f %d\n' % (idx[k], label[:70], max(r.rate, 1), colors.get(r.system, 5)))
    lat = os.path.join(outdir, 'latency.dat')
    with open(lat, 'w') as f:
        for k in ('latency_consume', 'latency_listen', 'latency_commit'):
            if k in ROWS:
                r = ROWS[k]
                name = {'latency_consume': 'consume(wait_ms)', 'latency_listen': 'LISTEN',
                        'latency_commit': 'produce+commit'}[k]
                f.write('"%s" %.3f %.3f\n' % (name, r.lat50(), r.lat99()))
    n = sum(1 for k in ORDER if ROWS[k].section != 'end-to-end latency')
    rates = [ROWS[k].rate for k in ORDER if ROWS[k].section != 'end-to-end latency' and ROWS[k].rate > 0]
    xmin = 10 ** math.floor(math.log10(min(rates) / 2)) if rates else 1
    lats = [ROWS[k].lat99() for k in ('latency_consume', 'latency_listen', 'latency_commit') if k in ROWS]
    lat_max = max([x for x in lats if x == x] or [10])
    gp = os.path.join(outdir, 'chart.gp')
    with open(gp, 'w') as f:
        f.write('''set terminal pngcairo size 1400,%d font "DejaVu Sans,9" noenhanced
set output "%s"
set multiplot title "pgtopic benchmark, messages per second (log scale). Colours: pgtopic (purple), pgtopic over the Kafka protocol (red), plain table (green), SKIP LOCKED queue (blue), PgQ (orange)"
set size 1,0.80
set origin 0,0.18
set style fill solid 0.85 border -1
set logscale x 10
set grid xtics
set xrange [%g:*]
set yrange [%f:0.4] reverse
set ytics nomirror
set xlabel "msgs/s"
set key off
set lmargin 75
set rmargin 8
plot "%s" using 3:1:(%g):3:($1-0.35):($1+0.35):4:ytic(2) with boxxyerror lc variable notitle, \\
     "" using 3:1:(sprintf("%%.0f", $3)) with labels left offset 0.5,0 font ",8" notitle
unset logscale x
set size 1,0.17
set origin 0,0
set yrange [-0.6:2.6] reverse
set xrange [0:%g]
set xlabel "end-to-end ms at 1,000 msgs/s (filled: p50, outline: p99)"
plot "%s" using 3:0:(0):3:($0-0.3):($0+0.3):ytic(1) with boxxyerror fs empty lc 7 notitle, \\
     "" using 2:0:(0):2:($0-0.3):($0+0.3) with boxxyerror lc 1 notitle, \\
     "" using 3:0:(sprintf("p50 %%.2f / p99 %%.2f ms", $2, $3)) with labels left offset 1,0 notitle
unset multiplot
''' % (max(700, 18 * n + 300), os.path.join(outdir, 'chart.png'), xmin, n + 0.6, dat, xmin, lat_max * 1.45 + 0.1, lat))
    try:
        subprocess.run(['gnuplot', gp], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return True
    except (OSError, subprocess.CalledProcessError) as e:
        say('chart: gnuplot failed: %s' % getattr(e, 'stderr', e))
        return False


def soak_report(outdir, samples, pgbench_out, seconds):
    path = os.path.join(outdir, 'soak.txt')
    lines = ['pgtopic soak: %d s, 2 producers (produce_batch 100 x 100 B), 1 consumer, retention 1 minute' % seconds, '',
             '   t s | produced/s | consumed/s | topic MB | segments | msgs kept |    lag | consumer RssAnon kB']
    for s in samples:
        lines.append('%6.0f | %10.0f | %10.0f | %8.1f | %8d | %9d | %6d | %d' % (
            s['t'], s['produced'], s['consumed'], s['bytes'] / MB, s['segments'], s['kept'], s['lag'], s['rss']))
    k = max(1, int(60 / (samples[1]['t'] - samples[0]['t']))) if len(samples) > 1 else 1
    first, last = samples[:k], samples[-k:]
    tp = lambda ss: sum(s['produced'] + s['consumed'] for s in ss) / len(ss)
    ratio = tp(last) / tp(first) if tp(first) else float('nan')
    half = samples[len(samples) // 2:]
    lines += ['', 'produce+consume throughput, last minute / first minute: %.2f (goal >= 0.90) %s' % (
        ratio, 'MET' if ratio >= 0.9 else 'MISSED'),
        'topic size: max %.1f MB over the run, max %.1f MB in the second half, %.1f MB at the end' % (
            max(s['bytes'] for s in samples) / MB, max(s['bytes'] for s in half) / MB, samples[-1]['bytes'] / MB),
        'consumer backend RssAnon: %d kB after the first interval, %d kB max, %d kB at the end' % (
            samples[0]['rss'], max(s['rss'] for s in samples), samples[-1]['rss']),
        '', 'pgbench (producers):', pgbench_out.strip()]
    text = '\n'.join(lines) + '\n'
    with open(path, 'w') as f:
        f.write(text)
    gp = os.path.join(outdir, 'soak.gp')
    dat = os.path.join(outdir, 'soak.dat')
    with open(dat, 'w') as f:
        for s in samples:
            f.write('%.0f %.0f %.0f %.2f %d\n' % (s['t'], s['produced'], s['consumed'], s['bytes'] / MB, s['rss']))
    with open(gp, 'w') as f:
        f.write('''set terminal pngcairo size 1100,500 font "DejaVu Sans,9" noenhanced
set output "%s"
set title "pgtopic soak: produce + consume with 1-minute retention"
set xlabel "seconds"
set ylabel "msgs/s"
set y2label "topic MB"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key outside bottom center horizontal
plot "%s" using 1:2 with lines lw 2 title "produced/s", "" using 1:3 with lines lw 2 title "consumed/s", \\
     "" using 1:4 axes x1y2 with lines lw 2 dt 2 title "topic MB (right)"
''' % (os.path.join(outdir, 'soak.png'), dat))
    subprocess.run(['gnuplot', gp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return text


# ---------------------------------------------------------------------------------------------


SETTINGS = ['server_version', 'shared_buffers', 'wal_level', 'synchronous_commit', 'fsync', 'full_page_writes',
            'wal_buffers', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'jit', 'pgtopic.database',
            'pgtopic.notify_interval', 'pgtopic.default_segment_size']


def header(mode, started):
    s = sql('SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s) ORDER BY name', (SETTINGS,))
    settings = ', '.join('%s=%s%s' % (n, v, u if u and u not in ('8kB',) else '') for n, v, u in s)
    sb = one("SELECT current_setting('shared_buffers')")
    wb = one("SELECT current_setting('wal_buffers')")
    mw = one("SELECT current_setting('max_wal_size')")
    ver = one("SELECT extversion FROM pg_extension WHERE extname = 'pgtopic'")
    pgq = one("SELECT extversion FROM pg_extension WHERE extname = 'pgq'")
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    load = os.getloadavg()
    return [
        'pgtopic benchmark (%s mode), %s' % (mode, started.strftime('%Y-%m-%d %H:%M:%S')),
        'machine: %d cores, %.0f GiB, load average at start %.2f %.2f %.2f (a shared machine: other jobs run too)' % (
            os.cpu_count(), mem, *load),
        'server: PostgreSQL %s, pgtopic %s, PgQ %s; shared_buffers=%s wal_level=%s synchronous_commit=%s fsync=%s '
        'full_page_writes=%s wal_buffers=%s max_wal_size=%s checkpoint_timeout=%s autovacuum=%s jit=%s' % (
            one('SHOW server_version'), ver, pgq, sb, one('SHOW wal_level'), one('SHOW synchronous_commit'),
            one('SHOW fsync'), one('SHOW full_page_writes'), wb, mw, one('SHOW checkpoint_timeout'),
            one('SHOW autovacuum'), one('SHOW jit')),
        'method: each comparison group runs %d rounds of %.0f s slices per workload, interleaved; CHECKPOINT before '
        'each slice; msgs/s = messages acknowledged / time; MB/s = payload bytes; latency per transaction (produce), '
        'per call (drain) or per message (end-to-end)' % (CTX.rounds, CTX.slice_s),
        '',
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--host', required=True)
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--kafka-port', type=int, help="the Kafka listener's port (bench/server.sh)")
    ap.add_argument('--db', default='bench')
    ap.add_argument('--out', required=True)
    ap.add_argument('--gen', required=True)
    ap.add_argument('--pgdata', help='data directory (for server CPU accounting)')
    ap.add_argument('--mode', default='standard', choices=['standard', 'quick', 'full', 'soak', 'only', 'profile'])
    ap.add_argument('--only', default='', help='comma list of groups: single,batch,drain,latency,listen,kafka '
                    '(kafka: the Kafka-protocol rows beside produce_batch(1000) and the 1-member SQL drain only)')
    ap.add_argument('--soak-seconds', type=int, default=600)
    ap.add_argument('--slice', type=float)
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--backlog', type=int)
    a = ap.parse_args()
    CTX.host, CTX.port, CTX.db, CTX.out, CTX.gen, CTX.pgdata = a.host, a.port, a.db, a.out, a.gen, a.pgdata
    CTX.kafka_port = a.kafka_port
    os.makedirs(CTX.out, exist_ok=True)
    os.makedirs(CTX.gen, exist_ok=True)
    CTX.log = open(os.path.join(CTX.out, 'run.log'), 'a')
    started = datetime.datetime.now()
    quick = a.mode == 'quick'
    CTX.slice_s = a.slice or (1.5 if quick else 3.0)
    CTX.rounds = a.rounds or 2
    backlog = a.backlog or (100000 if quick else 1000000)

    sql('CREATE EXTENSION IF NOT EXISTS pgtopic; CREATE EXTENSION IF NOT EXISTS pgq', fetch=False)
    fill_payload_table()
    CTX.kafka = kafka_ready()
    if CTX.kafka is None:
        sql('GRANT pgtopic_producer, pgtopic_consumer TO %s' % KAFKA_ROLE, fetch=False)
    head = header(a.mode, started)
    for line in head:
        say(line)

    if a.mode == 'profile':
        profile()
        return
    if a.mode == 'soak':
        samples, out = soak(a.soak_seconds)
        text = soak_report(CTX.out, samples, out, a.soak_seconds)
        say(text)
        return

    groups = set(a.only.split(',')) if a.only else {'single', 'batch', 'drain', 'latency', 'listen'}
    full = a.mode == 'full'
    t_start = time.monotonic()
    if 'single' in groups:
        for size in ((100, 1024) if full else (100,)):
            for clients in (1, 4):
                say('[produce 1 msg/tx, %d B, %d clients]' % (size, clients))
                group_single(size, clients)
        if not full:
            say('[produce 1 msg/tx, 1024 B, 4 clients]')
            group_single(1024, 4, with_8p=False)
    if CTX.kafka is not None and groups & {'kafka', 'batch', 'drain'}:
        say('Kafka rows left out: %s' % CTX.kafka)
    if 'batch' in groups:
        for size in ((100, 1024) if full else (100,)):
            for batch in (100, 1000):
                for clients in (1, 4):
                    say('[produce_batch %d x %d B, %d clients]' % (batch, size, clients))
                    group_batch(size, batch, clients, kafka=size == 100 and batch == 1000)
        if not full:
            say('[produce_batch 1000 x 1024 B, 4 clients]')
            group_batch(1024, 1000, 4)
    elif 'kafka' in groups:
        for clients in (1, 4):
            say('[Kafka Produce vs produce_batch 1000 x 100 B, %d clients]' % clients)
            group_batch(100, 1000, clients, kafka=True, sql_baselines=False)
    if 'drain' in groups:
        for size in ((100, 1024) if full else (100,)):
            say('[drain %d x %d B]' % (backlog, size))
            group_drain(size, backlog, kafka=size == 100)
    elif 'kafka' in groups:
        say('[drain %d x 100 B: Kafka Fetch vs consume]' % backlog)
        group_drain(100, backlog, members_list=(1,), baselines=False, kafka=True)
    if 'latency' in groups:
        say('[end-to-end latency at 1,000 msgs/s]')
        group_latency(1000, 5 if quick else 15)
    if 'listen' in groups:
        say('[4 producers with 20 LISTEN clients vs none]')
        group_listeners(20)

    head.insert(4, 'duration: %.0f s; load average at the end %.2f %.2f %.2f' % (time.monotonic() - t_start, *os.getloadavg()))
    targets = targets_eval()
    text, idx = write_report(os.path.join(CTX.out, 'results.txt'), head, targets)
    chart(CTX.out, idx)
    say('')
    say(text)
    say('results: %s' % CTX.out)
    failed = [k for k in ORDER for ok, _ in ROWS[k].checks if not ok]
    if failed:
        say('CHECKS FAILED: %s' % ', '.join(failed))
        sys.exit(2)


if __name__ == '__main__':
    main()
