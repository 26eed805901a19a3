#!/usr/bin/env python3
"""Idempotent Kafka producers against pgtopic's listener (docs/kafka.md, "Idempotent producers"),
on a throwaway server: InitProducerId v0-1 (a transactional id is refused with 53); raw Produce
frames: a retried duplicate batch is acknowledged with its original base offset and not written
again, a sequence gap gets 45, an older epoch 47, a producer id never handed out 59, a batch
without a producer id is written as before; the state survives a clean restart and a crash
(immediate stop); state idle past pgtopic.kafka_producer_expiration is deleted; a dropped topic's
state goes with it; confluent-kafka (librdkafka 2.0.2) with enable.idempotence=True producing
while the postmaster is SIGKILLed and restarted: every acknowledged message stored exactly once,
in per-partition order; kafka-python 2.0.2 and kcat without idempotence keep working.

    /usr/bin/python3 test/kafka/kafka_idempotence.py [--bindir DIR] [--port N] [--kafka-port N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throwaway_server import crash_lines  # noqa: E402
from kafka_test_server import (check, failures, pg_ctl, produce_through_kills, start_with_listener,  # noqa: E402
                               stored_values)
import kafka_raw  # noqa: E402


def connect_kafka(port, tries=100):
    for _ in range(tries):
        try:
            c = kafka_raw.Conn(port)
            # an answered request: the listener is up (it starts after recovery)
            if c.init_producer_id()[0] == 0:
                return c
            c.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError('the Kafka listener did not come up')


def count_rows(dsn, topic, partition):
    import psycopg2
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pgtopic.fetch(%s, %s, 0, 100000)", (topic, partition))
    n = cur.fetchone()[0]
    conn.close()
    return n


def sql(dsn, query, args=()):
    import psycopg2
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(query, args)
    rows = cur.fetchall() if cur.description else None
    conn.close()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--dir', default='/tmp/pgtopic-kafka-idempotence')
    ap.add_argument('--port', type=int, default=54620)
    ap.add_argument('--kafka-port', type=int, default=19097)
    args = ap.parse_args()
    server = start_with_listener(args, ["SELECT pgtopic.create_topic('idem', 2)"])
    try:
        raw_tests(args, server)
        client_crash_test(f'127.0.0.1:{args.kafka_port}', server, args.bindir)
        plain_clients(f'127.0.0.1:{args.kafka_port}', server.dsn)
        lines, _ = crash_lines(server.log)
        check('no crash in the server log', not lines, lines)
    finally:
        server.stop()
    print('kafka_idempotence: ' + ('ok' if not failures else f'{len(failures)} FAILED'))
    return 1 if failures else 0


def raw_tests(args, server):
    dsn = server.dsn
    c = connect_kafka(args.kafka_port)
    e0, pid0, ep0 = c.init_producer_id(version=0)
    e1, pid1, ep1 = c.init_producer_id(version=1)
    check('InitProducerId v0 and v1: fresh producer ids, epoch 0', e0 == 0 and e1 == 0 and pid1 > pid0 >= 1 and
          ep0 == 0 and ep1 == 0, (e0, pid0, ep0, e1, pid1, ep1))
    et, pt, _ = c.init_producer_id(transactional_id='txn-1')
    check('InitProducerId with a transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53)', et == 53 and pt == -1,
          (et, pt))

    pid = pid1
    b1 = kafka_raw.record_batch([b'a0', b'a1', b'a2'], pid, 0, 0)
    err, base1 = c.produce('idem', 0, b1)
    check('an idempotent batch (seq 0-2) is written', err == 0 and base1 >= 0 and count_rows(dsn, 'idem', 0) == 3,
          (err, base1))
    err, again = c.produce('idem', 0, b1)
    check('the same batch again: acknowledged with its original base offset', err == 0 and again == base1,
          (err, again, base1))
    check('... and not written again', count_rows(dsn, 'idem', 0) == 3, count_rows(dsn, 'idem', 0))
    b2 = kafka_raw.record_batch([b'a3', b'a4'], pid, 0, 3)
    err, base2 = c.produce('idem', 0, b2)
    check('the next sequence (3-4) is written after it', err == 0 and base2 == base1 + 3, (err, base2))
    err, again = c.produce('idem', 0, b1)
    check('a retry of an older batch among the last 5 still gets its offset', err == 0 and again == base1,
          (err, again))
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'gap'], pid, 0, 10))
    check('a sequence gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing written',
          err == 45 and count_rows(dsn, 'idem', 0) == 5, (err, count_rows(dsn, 'idem', 0)))
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'overlap'], pid, 0, 4))
    check('an overlapping sequence: 45', err == 45, err)
    err, _ = c.produce('idem', 1, kafka_raw.record_batch([b'p1'], pid, 0, 0))
    check('another partition has its own sequence', err == 0, err)
    b_epoch1 = kafka_raw.record_batch([b'e1'], pid, 1, 0)
    err, base_e1 = c.produce('idem', 0, b_epoch1)
    check('a new epoch starting at sequence 0 is written', err == 0 and base_e1 == base2 + 2, (err, base_e1))
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'old'], pid, 0, 5))
    check('the old epoch is fenced: INVALID_PRODUCER_EPOCH (47)', err == 47, err)
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'e2'], pid, 2, 7))
    check('a new epoch not starting at 0: 45', err == 45, err)
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'x'], 10 ** 15, 0, 0))
    check('a producer id never handed out: UNKNOWN_PRODUCER_ID (59)', err == 59, err)
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'noseq'], pid, 0, -1))
    check('a producer id without a sequence: INVALID_RECORD (87)', err == 87, err)
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'plain1', b'plain2']))
    check('a batch without a producer id is written as before', err == 0, err)
    err, _ = c.produce('idem', 0, kafka_raw.record_batch([b'plain1', b'plain2']))
    check('... twice (no deduplication without a producer id)', err == 0 and count_rows(dsn, 'idem', 0) == 10,
          (err, count_rows(dsn, 'idem', 0)))
    for version in (3, 5):
        err, base = c.produce('idem', 0, b_epoch1, version=version)
        check(f'Produce v{version}: the duplicate gets its offset too', err == 0 and base == base_e1, (err, base))
    rows = sql(dsn, "SELECT producer_id, \"partition\", producer_epoch, last_sequence, batches "
                    "FROM pgtopic.catalog_kafka_producers ORDER BY 1, 2")
    check('the state table: one row per producer partition, epoch, last sequence, last batches',
          rows == [(pid, 0, 1, 0, [0, 0, base_e1]), (pid, 1, 0, 0, [0, 0, rows[1][4][2] if len(rows) > 1 else -1])],
          rows)
    c.close()

    # acks=0 still records the state (no response)
    c = connect_kafka(args.kafka_port)
    _, pid2, _ = c.init_producer_id()
    c.produce('idem', 1, kafka_raw.record_batch([b'q0'], pid2, 0, 0), acks=0)
    err, base_q = c.produce('idem', 1, kafka_raw.record_batch([b'q1'], pid2, 0, 1))
    check('acks=0 batches advance the sequence too', err == 0, err)
    b_last = kafka_raw.record_batch([b'q2', b'q3'], pid2, 0, 2)
    err, base_last = c.produce('idem', 1, b_last)
    c.close()
    n1 = count_rows(dsn, 'idem', 1)

    # a clean restart, then a crash: the state is read back from the table
    pg_ctl(server, args.bindir, '-m', 'fast', 'restart')
    c = connect_kafka(args.kafka_port)
    err, base = c.produce('idem', 1, b_last)
    check('after a restart the duplicate still gets its original offset', err == 0 and base == base_last,
          (err, base, base_last))
    err, base = c.produce('idem', 0, b_epoch1)
    check('... on every partition', err == 0 and base == base_e1, (err, base))
    err, _ = c.produce('idem', 1, kafka_raw.record_batch([b'gap'], pid2, 0, 9))
    check('... and a gap is still refused (45)', err == 45, err)
    b_crash = kafka_raw.record_batch([b'c0'], pid2, 0, 4)
    err, base_crash = c.produce('idem', 1, b_crash)
    check('the next batch is written', err == 0, err)
    c.close()
    pg_ctl(server, args.bindir, '-m', 'immediate', 'stop')
    pg_ctl(server, args.bindir, 'start')
    c = connect_kafka(args.kafka_port)
    err, base = c.produce('idem', 1, b_crash)
    check('after a crash (immediate stop) the last batch is a duplicate', err == 0 and base == base_crash,
          (err, base, base_crash))
    check('... no row written twice', count_rows(dsn, 'idem', 1) == n1 + 1, (count_rows(dsn, 'idem', 1), n1))
    _, pid3, _ = c.init_producer_id()
    check('producer ids are not reused after a crash', pid3 > pid2, (pid3, pid2))

    # expiration: state idle for longer is deleted and forgotten
    sql(dsn, "ALTER SYSTEM SET pgtopic.kafka_producer_expiration = '1s'")
    sql(dsn, "SELECT pg_reload_conf()")
    time.sleep(3)
    left = sql(dsn, "SELECT count(*) FROM pgtopic.catalog_kafka_producers")[0][0]
    check('state idle past pgtopic.kafka_producer_expiration is deleted', left == 0, left)
    err, _ = c.produce('idem', 1, kafka_raw.record_batch([b'late'], pid2, 0, 40))
    check('... and the producer is treated as new (any sequence)', err == 0, err)
    sql(dsn, "ALTER SYSTEM RESET pgtopic.kafka_producer_expiration")
    sql(dsn, "SELECT pg_reload_conf()")
    time.sleep(0.5)

    # a dropped topic drops its producers' state
    sql(dsn, "SELECT pgtopic.create_topic('idem_drop', 1)")
    err, _ = c.produce('idem_drop', 0, kafka_raw.record_batch([b'd'], pid3, 0, 0))
    before = sql(dsn, "SELECT count(*) FROM pgtopic.catalog_kafka_producers p JOIN pgtopic.catalog_topics t "
                      "USING (topic_id) WHERE t.topic = 'idem_drop'")[0][0]
    sql(dsn, "SELECT pgtopic.drop_topic('idem_drop')")
    after = sql(dsn, "SELECT count(*) FROM pgtopic.catalog_kafka_producers WHERE producer_id = %s", (pid3,))[0][0]
    check('a dropped topic drops its producer state', err == 0 and before == 1 and after == 0, (err, before, after))
    sql(dsn, "SELECT pgtopic.create_topic('idem_drop', 1)")
    err, _ = c.produce('idem_drop', 0, kafka_raw.record_batch([b'd'], pid3, 0, 0))
    check('... and a topic of the same name starts afresh', err == 0 and count_rows(dsn, 'idem_drop', 0) == 1, err)
    c.close()


def client_crash_test(broker, server, bindir):
    """SIGKILL the postmaster while an idempotent librdkafka producer runs; after the restart every
    acknowledged message is stored exactly once, in the order produced on its partition."""
    sql(server.dsn, "SELECT pgtopic.create_topic('idem_crash', 3)")
    acked, failed, produced, rounds, left = produce_through_kills(
        server, bindir, {'bootstrap.servers': broker, 'enable.idempotence': True, 'linger.ms': 5,
                         'message.timeout.ms': 120000, 'retry.backoff.ms': 200, 'reconnect.backoff.max.ms': 1000,
                         'log_level': 0},
        'idem_crash', 3, kills=2, warmup_s=2, settle_s=3, flush_s=120)
    stored, order_ok = {}, True
    for part, values in stored_values(server.dsn, 'idem_crash', 3).items():
        last = -1
        for v in values:
            stored[v] = stored.get(v, 0) + 1
            n = int(v[2:])
            if n % 3 != part or n <= last:
                order_ok = False
            last = n
    missing = [v for v in acked if v not in stored]
    twice = [v for v, n in stored.items() if n > 1]
    check(f'idempotent producer through 2 SIGKILLs: {len(acked)} of {produced} acknowledged (at the kills: '
          f'{rounds}), every one stored', rounds[0] > 0 and not missing and not failed and left == 0,
          (len(missing), missing[:3], failed[:3], left))
    check(f'... exactly once ({len(stored)} distinct stored)', not twice, twice[:5])
    check('... in per-partition order', order_ok)


def plain_clients(broker, dsn):
    """kafka-python 2.0.2 and kcat produce without idempotence as before."""
    from kafka import KafkaProducer
    sql(dsn, "SELECT pgtopic.create_topic('plain', 1)")
    kp = KafkaProducer(bootstrap_servers=broker, acks='all', api_version=(2, 0, 0))
    futures = [kp.send('plain', value=b'kp-%d' % i, partition=0) for i in range(20)]
    kp.flush()
    ok = all(f.get(timeout=10) is not None for f in futures)
    kp.close()
    check('kafka-python 2.0.2 (no idempotence) produces', ok and count_rows(dsn, 'plain', 0) == 20,
          count_rows(dsn, 'plain', 0))
    if shutil.which('kcat'):
        r = subprocess.run(['kcat', '-P', '-b', broker, '-t', 'plain', '-p', '0'], input=b'k1\nk2\nk3\n',
                           capture_output=True, timeout=60)
        check('kcat -P (no idempotence) produces', r.returncode == 0 and count_rows(dsn, 'plain', 0) == 23,
              (r.returncode, r.stderr[-300:], count_rows(dsn, 'plain', 0)))
        r = subprocess.run(['kcat', '-P', '-b', broker, '-t', 'plain', '-p', '0', '-X', 'enable.idempotence=true'],
                           input=b'i1\ni2\n', capture_output=True, timeout=60)
        check('kcat -P -X enable.idempotence=true produces', r.returncode == 0 and count_rows(dsn, 'plain', 0) == 25,
              (r.returncode, r.stderr[-300:], count_rows(dsn, 'plain', 0)))


if __name__ == '__main__':
    sys.exit(main())
