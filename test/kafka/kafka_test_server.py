"""Shared by the Kafka client tests (kafka_clients.py, kafka_idempotence.py,
kafka_listener_load.py): the ok/FAIL report, a throwaway server with the Kafka listener on, and a
librdkafka producer running while the postmaster is SIGKILLed and restarted."""
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from throwaway_server import ThrowawayServer, as_postgres, connect_with_extension  # noqa: E402

failures = []


def check(name, ok, got=None):
    print(('ok   ' if ok else 'FAIL ') + name + ('' if ok else f': got {got!r}'))
    if not ok:
        failures.append(name)


def pg_ctl(server, bindir, *args, check=True):
    subprocess.run(as_postgres([os.path.join(bindir, 'pg_ctl'), '-D', server.data, '-l', server.log, '-w'] +
                               list(args)), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_with_listener(args, setup_sql=(), extra_conf=''):
    """A started throwaway server (args: bindir, dir, port, kafka_port) with pgtopic, the listener's
    role kafka_client (pgtopic_admin), `setup_sql` run as the superuser, then the listener on
    127.0.0.1:kafka_port (and `extra_conf`) after a restart. The caller stops it."""
    server = ThrowawayServer(args.bindir, args.dir, args.port, settings="pgtopic.database = 'postgres'\n")
    server.start()
    try:
        conn = connect_with_extension(server.dsn)
        cur = conn.cursor()
        cur.execute("CREATE ROLE kafka_client LOGIN")
        cur.execute("GRANT pgtopic_admin TO kafka_client")
        for query in setup_sql:
            cur.execute(query)
        conn.close()
        with open(os.path.join(server.data, 'postgresql.conf'), 'a') as f:
            f.write(f"pgtopic.kafka_listen_addresses = '127.0.0.1'\npgtopic.kafka_port = {args.kafka_port}\n"
                    "pgtopic.kafka_role = 'kafka_client'\n" + extra_conf)
        pg_ctl(server, args.bindir, 'restart')
    except BaseException:
        server.stop()
        raise
    return server


def produce_through_kills(server, bindir, config, topic, partitions, kills, warmup_s, settle_s, flush_s):
    """A confluent-kafka Producer (config) sends b'm-<i>' to partition i % partitions of topic while
    the postmaster is SIGKILLed `kills` times (after warmup_s, then settle_s after each restart).
    Returns (acked values, failed values, messages produced, acked before each kill, left unflushed)."""
    from confluent_kafka import Producer

    acked, failed = [], []

    def on_delivery(err, m):
        (failed if err is not None else acked).append(m.value())

    p = Producer(config)
    stop = threading.Event()
    produced = [0]

    def run():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b'm-%d' % i, partition=i % partitions, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)
        produced[0] = i

    t = threading.Thread(target=run)
    t.start()
    time.sleep(warmup_s)
    before = []
    for _ in range(kills):
        with open(os.path.join(server.data, 'postmaster.pid')) as f:
            pid = int(f.readline())
        before.append(len(acked))
        os.kill(pid, signal.SIGKILL)
        time.sleep(2)  # the children notice the postmaster's death and exit
        pg_ctl(server, bindir, 'start')  # "another server might be running": the stale pid file
        time.sleep(settle_s)
    stop.set()
    t.join()
    left = p.flush(flush_s)
    return acked, failed, produced[0], before, left


def stored_values(dsn, topic, partitions):
    """The values stored in each partition of topic, in offset order: {partition: [bytes]}."""
    import psycopg2
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    stored = {}
    for part in range(partitions):
        cur.execute("SELECT value FROM pgtopic.fetch(%s, %s, 0, 100000)", (topic, part))
        stored[part] = [bytes(v) for (v,) in cur.fetchall()]
    conn.close()
    return stored
