#!/usr/bin/env python3
"""What Kafka clients can do with pgtopic's listener today (docs/kafka.md), with Debian's
kafka-python 2.0.2 (python3-kafka) and confluent-kafka 1.7 on librdkafka 2.0.2
(python3-confluent-kafka), against a throwaway server: list topics and partitions, create
(with a config, and again: TOPIC_ALREADY_EXISTS) and delete topics, beginning/end offsets (the
end is the last stable offset: a transaction held open in SQL holds it back) and offsets for
times; consumers assigned to partitions (no group) read SQL-produced messages exactly once, byte
for byte, in offset order, past a rolled-back offset and never above an open SQL transaction;
producers with acks=all across partitions are read back by pgtopic.fetch/consume at the acknowledged
partitions and offsets and by both consumers; a gzip batch (kafka-python) is refused with error 76.
Fails on any difference or a crash in the server log.

    /usr/bin/python3 test/kafka/kafka_clients.py [--bindir DIR] [--port N] [--kafka-port N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throwaway_server import crash_lines  # noqa: E402
from kafka_test_server import check, failures, produce_through_kills, start_with_listener, stored_values  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--dir', default='/tmp/pgtopic-kafka-clients')
    ap.add_argument('--port', type=int, default=54610)
    ap.add_argument('--kafka-port', type=int, default=19096)
    args = ap.parse_args()
    try:
        import kafka  # noqa: F401
        import confluent_kafka  # noqa: F401
    except ImportError as e:
        print(f'kafka_clients: skipped ({e}; scripts/setup installs python3-kafka and python3-confluent-kafka)')
        return 0

    server = start_with_listener(args, ["SELECT pgtopic.create_topic('orders', 3)",
                                        "SELECT pgtopic.produce('orders', 'a'::text, partition => 0)",
                                        "SELECT pgtopic.produce('orders', 'b'::text, partition => 0)"])
    try:
        run_clients(f'127.0.0.1:{args.kafka_port}', server.dsn, server.log)
        crash_test(server, args.bindir, f'127.0.0.1:{args.kafka_port}')
        lines, _ = crash_lines(server.log)
        check('no crash in the server log', not lines, lines)
    finally:
        server.stop()
    print('kafka_clients: ' + ('ok' if not failures else f'{len(failures)} FAILED'))
    return 1 if failures else 0


def run_clients(broker, dsn, log_path):
    import psycopg2
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import NewTopic
    from confluent_kafka import Consumer, KafkaException, TopicPartition as CTP
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic

    # ---- kafka-python
    for attempt in range(50):  # the listener starts once recovery is over
        try:
            admin = KafkaAdminClient(bootstrap_servers=broker, client_id='pgtopic-test', request_timeout_ms=5000,
                                     api_version_auto_timeout_ms=5000)
            break
        except Exception:
            time.sleep(0.2)
    check('kafka-python: list_topics', admin.list_topics() == ['orders'], admin.list_topics())
    r = admin.create_topics([NewTopic('kp1', 2, 1, topic_configs={'retention.ms': '60000'})])
    check('kafka-python: create_topics', [e[1] for e in r.topic_errors] == [0], r)
    d = admin.describe_topics(['kp1'])
    check('kafka-python: describe_topics: 2 partitions led by broker 1',
          [(p['partition'], p['leader']) for p in d[0]['partitions']] == [(0, 1), (1, 1)], d)
    r = admin.delete_topics(['kp1'])
    check('kafka-python: delete_topics', [e[1] for e in r.topic_error_codes] == [0], r)
    admin.close()

    held = psycopg2.connect(dsn)  # an open producer transaction holds partition 1's LSO at 1
    hc = held.cursor()
    hc.execute("SELECT pgtopic.produce('orders', 'c'::text, partition => 1)")
    held.commit()
    hc.execute("SELECT pgtopic.produce('orders', 'held'::text, partition => 1)")

    # The last stable offsets as SQL sees them (after the restart above, offsets resume above
    # the durable reserved bound, so partition 0's is not 2).
    sc = psycopg2.connect(dsn)
    scur = sc.cursor()
    scur.execute("SELECT last_stable_offset FROM pgtopic.partitions WHERE topic = 'orders' ORDER BY \"partition\"")
    lsos = [r[0] for r in scur.fetchall()]
    sc.close()
    consumer = KafkaConsumer(bootstrap_servers=broker, api_version_auto_timeout_ms=5000, request_timeout_ms=6000)
    check('kafka-python: partitions_for_topic', consumer.partitions_for_topic('orders') == {0, 1, 2})
    tps = [TopicPartition('orders', p) for p in range(3)]
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    check('kafka-python: beginning_offsets', [begin[tp] for tp in tps] == [0, 0, 0], begin)
    check('kafka-python: end_offsets are the last stable offsets', [end[tp] for tp in tps] == lsos and lsos[1] == 1,
          (end, lsos))
    times = consumer.offsets_for_times({tps[0]: 1000, tps[2]: 1000})
    check('kafka-python: offsets_for_times', times[tps[0]].offset == 0 and times[tps[2]] is None, times)
    consumer.close()

    # ---- confluent-kafka (librdkafka)
    a = AdminClient({'bootstrap.servers': broker})
    md = a.list_topics(timeout=10)
    check('confluent-kafka: list_topics', {t: len(v.partitions) for t, v in md.topics.items()} == {'orders': 3},
          md.topics)
    check('confluent-kafka: controller and cluster id', md.controller_id == 1 and md.cluster_id.startswith('pgtopic-'),
          (md.controller_id, md.cluster_id))
    f = a.create_topics([CNewTopic('ck1', 4, 1)])['ck1']
    check('confluent-kafka: create_topics', f.result(10) is None)
    try:
        a.create_topics([CNewTopic('ck1', 4, 1)])['ck1'].result(10)
        check('confluent-kafka: create_topics again fails', False)
    except KafkaException as e:
        check('confluent-kafka: create_topics again: TOPIC_ALREADY_EXISTS', e.args[0].code() == 36, e)
    check('confluent-kafka: delete_topics', a.delete_topics(['ck1'])['ck1'].result(10) is None)
    c = Consumer({'bootstrap.servers': broker, 'group.id': 'unused'})
    marks = [c.get_watermark_offsets(CTP('orders', p), timeout=10) for p in range(3)]
    check('confluent-kafka: watermarks (high = last stable offset)', marks == [(0, x) for x in lsos], marks)
    t = c.offsets_for_times([CTP('orders', 0, 1000)], timeout=10)
    check('confluent-kafka: offsets_for_times', t[0].offset == 0 and t[0].error is None, t)
    c.close()
    held.rollback()
    held.close()

    produce_and_fetch(broker, dsn, log_path)
    fidelity(broker, dsn)


def sql_rows(cur, topic, partitions):
    """Every message of the topic as (partition, offset, key bytes, value bytes, headers) via pgtopic.fetch."""
    rows = []
    for p in range(partitions):
        cur.execute("SELECT msg_offset, key, value, headers FROM pgtopic.fetch(%s, %s, 0, 100000) ORDER BY msg_offset",
                    (topic, p))
        for off, key, value, headers in cur.fetchall():
            hdrs = sorted((k, str(v).encode()) for k, v in (headers or {}).items())
            rows.append((p, off, key.encode() if key is not None else None, bytes(value), hdrs))
    return rows


def kp_read(broker, topic, partitions, expect):
    """kafka-python consumer assigned to the partitions (no group), from the beginning."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=broker, api_version_auto_timeout_ms=5000, enable_auto_commit=False,
                      consumer_timeout_ms=1500, check_crcs=True, fetch_max_wait_ms=200)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    deadline = time.time() + 20
    while len(got) < expect and time.time() < deadline:
        for m in c:
            got.append((m.partition, m.offset, m.key, m.value, sorted((k, v) for k, v in m.headers)))
    c.close()
    return sorted(got, key=lambda r: (r[0], r[1])), got


def ck_read(broker, topic, partitions, expect):
    """confluent-kafka consumer assigned to the partitions (no group), from the beginning."""
    from confluent_kafka import Consumer, TopicPartition as CTP, OFFSET_BEGINNING
    c = Consumer({'bootstrap.servers': broker, 'group.id': 'unused', 'enable.auto.commit': False,
                  'check.crcs': True, 'fetch.wait.max.ms': 200})
    c.assign([CTP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.time() + 20
    while len(got) < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.partition(), m.offset(), m.key(), m.value(), sorted((k, v) for k, v in (m.headers() or []))))
    extra = c.poll(1.0)  # nothing more: exactly once
    if extra is not None and not extra.error():
        got.append(('extra', extra.offset()))
    c.close()
    return sorted(got, key=lambda r: (str(r[0]), r[1])), got


def in_offset_order(got):
    last = {}
    for r in got:
        if r[0] in last and r[1] <= last[r[0]]:
            return False
        last[r[0]] = r[1]
    return True


def produce_and_fetch(broker, dsn, log_path):
    import psycopg2
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from confluent_kafka import Producer

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pgtopic.create_topic('mix', 3)")
    # ---- SQL produces -> each client reads (a rolled-back produce leaves a gap at 0:5)
    for i in range(30):
        if i == 15:
            cur.execute("BEGIN")
            cur.execute("SELECT pgtopic.produce('mix', 'gone'::text, partition => 0)")
            cur.execute("ROLLBACK")
        cur.execute("SELECT pgtopic.produce('mix', %s::bytea, %s, %s::jsonb, %s)",
                    (bytes([i, 0, 255]) + b'v', f'k{i}', '{"n": "%d"}' % i, i % 3))
    want = sql_rows(cur, 'mix', 3)
    check('SQL produce: a rolled-back offset leaves a gap', [r[1] for r in want if r[0] == 0][5:7] == [6, 7],
          [r[1] for r in want if r[0] == 0])
    got, raw = kp_read(broker, 'mix', 3, len(want))
    check('kafka-python consumer reads SQL-produced messages exactly once, byte for byte, past the gap', got == want,
          (got[:3], want[:3], len(got), len(want)))
    check('kafka-python: in offset order per partition', in_offset_order(raw))
    got, raw = ck_read(broker, 'mix', 3, len(want))
    check('confluent-kafka consumer reads SQL-produced messages exactly once, byte for byte, past the gap',
          got == want, (got[:3], want[:3], len(got), len(want)))
    check('confluent-kafka: in offset order per partition', in_offset_order(raw))

    # ---- an open SQL producer transaction holds the clients at the LSO
    held = psycopg2.connect(dsn)
    hc = held.cursor()
    hc.execute("SELECT pgtopic.produce('mix', 'held'::text, partition => 1)")
    cur.execute("SELECT pgtopic.produce('mix', 'behind'::text, partition => 1)")
    got, _ = kp_read(broker, 'mix', 3, len(want) + 2)
    check('kafka-python: an open SQL transaction holds fetches at the last stable offset', got == want, len(got))
    got, _ = ck_read(broker, 'mix', 3, len(want) + 2)
    check('confluent-kafka: an open SQL transaction holds fetches at the last stable offset', got == want, len(got))
    held.commit()
    held.close()
    want = sql_rows(cur, 'mix', 3)
    got, _ = ck_read(broker, 'mix', 3, len(want))
    check('confluent-kafka: after the commit both messages come', got == want and len(want) == 32, len(got))

    # ---- each client produces (acks=all, batches across partitions) -> SQL and both clients read
    cur.execute("SELECT pgtopic.create_topic('kpy', 3)")
    kp = KafkaProducer(bootstrap_servers=broker, acks='all', linger_ms=20, batch_size=65536,
                       api_version_auto_timeout_ms=5000)
    futures = [kp.send('kpy', value=b'kp-%d' % i, key=b'key-%d' % (i % 7), partition=i % 3,
                       headers=[('i', str(i).encode()), ('src', b'kafka-python')]) for i in range(300)]
    kp.flush()
    meta = [f.get(timeout=10) for f in futures]
    acked = sorted((m.partition, m.offset, b'key-%d' % (i % 7), b'kp-%d' % i,
                    sorted([('i', str(i).encode()), ('src', b'kafka-python')])) for i, m in enumerate(meta))
    check('kafka-python producer (acks=all): 300 acknowledged, 100 per partition',
          [sum(1 for a in acked if a[0] == p) for p in range(3)] == [100, 100, 100], acked[:3])
    rows = sql_rows(cur, 'kpy', 3)
    check('kafka-python produce -> pgtopic.fetch: same partitions, offsets, keys, values, headers', rows == acked,
          (rows[:2], acked[:2]))
    cur.execute("SELECT count(*), count(DISTINCT (partition, msg_offset)) FROM pgtopic.consume('kpy', 'g-kpy', 1000)")
    check('kafka-python produce -> pgtopic.consume reads all 300 once', cur.fetchone() == (300, 300))
    # kafka-python 2.0.2 compresses whatever the broker says (librdkafka does not: pgtopic's API
    # versions do not enable its codecs); it knows no name for error 76, the server log says it.
    bad = KafkaProducer(bootstrap_servers=broker, acks='all', compression_type='gzip', retries=0,
                        api_version_auto_timeout_ms=5000)
    try:
        bad.send('kpy', value=b'x' * 1000, partition=0).get(timeout=10)
        check('kafka-python gzip batch refused', False)
    except KafkaError:
        with open(log_path) as f:
            logged = 'refused (Kafka error 76)' in f.read()
        check('kafka-python gzip batch refused: UNSUPPORTED_COMPRESSION_TYPE (76), nothing stored',
              logged and sql_rows(cur, 'kpy', 3) == rows, logged)
    bad.close()
    kp.close()

    # Keyed messages without a partition: kafka-python's default partitioner and librdkafka's
    # murmur2_random (its default is consistent_random, CRC-32) pick the partition
    # pgtopic.produce would (Kafka's murmur2), for every key.
    # (text keys only: a key that is not UTF-8 is refused until the storage change)
    keys = [b'key-%d' % i for i in range(40)] + [b'alice', b'bob', 'ключ-€'.encode()]
    cur.execute("SELECT pgtopic.create_topic('keyed', 7)")
    kpk = KafkaProducer(bootstrap_servers=broker, acks='all', api_version_auto_timeout_ms=5000)
    kp_parts = [kpk.send('keyed', value=b'v', key=k).get(timeout=10).partition for k in keys]
    kpk.close()
    rk_parts = []
    rk = Producer({'bootstrap.servers': broker, 'acks': 'all', 'partitioner': 'murmur2_random'})
    for k in keys:
        rk.produce('keyed', value=b'v', key=k, on_delivery=lambda err, m: rk_parts.append(m.partition()))
        rk.flush(10)
    cur.execute("SELECT pgtopic.murmur2(k) & 2147483647 FROM unnest(%s::bytea[]) AS k",
                ([psycopg2.Binary(k) for k in keys],))
    sql_parts = [h % 7 for (h,) in cur.fetchall()]
    check('partitioner: kafka-python (default) and librdkafka (murmur2_random) choose pgtopic\'s partitions '
          'for %d keys' % len(keys), kp_parts == sql_parts and rk_parts == sql_parts, (kp_parts, rk_parts, sql_parts))

    ck = Producer({'bootstrap.servers': broker, 'acks': 'all', 'linger.ms': 20, 'batch.num.messages': 1000})
    delivered = []

    def on_delivery(err, m):
        if err is None:
            # (a delivery report carries no headers: the ones sent, from the value's number)
            delivered.append((m.partition(), m.offset(), m.key(), m.value(), [('i', m.value()[3:])]))
        else:
            delivered.append(('error', str(err)))

    for i in range(600):
        ck.produce('kpy', value=b'ck-%d' % i, key=b'ck-%d' % (i % 5), partition=i % 3,
                   headers=[('i', str(i).encode())], on_delivery=on_delivery)
        if i % 100 == 0:
            ck.poll(0)
    ck.flush(20)
    delivered.sort(key=lambda r: (str(r[0]), r[1]))
    check('confluent-kafka producer (acks=all): 600 delivered', len(delivered) == 600 and
          all(d[0] != 'error' for d in delivered), delivered[:3])
    rows = sql_rows(cur, 'kpy', 3)
    check('confluent-kafka produce -> pgtopic.fetch: same partitions, offsets, keys, values, headers',
          [r for r in rows if r[3].startswith(b'ck-')] == delivered, ([r for r in rows if r[3].startswith(b'ck-')][:2], delivered[:2]))
    cur.execute("SELECT count(*) FROM pgtopic.consume('kpy', 'g-kpy', 1000)")
    check('confluent-kafka produce -> pgtopic.consume reads the 600 new ones', cur.fetchone() == (600,))
    got, raw = kp_read(broker, 'kpy', 3, 900)
    check('kafka-python consumer reads both producers\' 900 messages exactly once', got == rows, (len(got), len(rows)))
    got, raw = ck_read(broker, 'kpy', 3, 900)
    check('confluent-kafka consumer reads both producers\' 900 messages exactly once', got == rows,
          (len(got), len(rows)))
    conn.close()


def fidelity(broker, dsn):
    """Each client's records come back byte for byte, through SQL (fetch_records) and through
    both consumers: binary keys, empty and null keys and values, headers in order with duplicate
    keys and empty (and, from librdkafka, null) values, the client's timestamps."""
    import psycopg2
    from kafka import KafkaProducer
    from confluent_kafka import Producer

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pgtopic.create_topic('fid', 2)")
    base_ts = 1700000000123
    # kafka-python 2.0.2 sends a None header value as an empty one: nulls only from librdkafka
    sent = {'kafka-python': [], 'librdkafka': []}
    for i in range(40):
        key = [b'\x00\xff' + bytes([i]), b'', None, 'ключ-%d' % i][i % 4]
        key = key.encode() if isinstance(key, str) else key
        value = [bytes(range(256)) + bytes([i]), b'', None, b'v%d' % i][(i // 4) % 4]
        headers = [('h', b'1'), ('dup', b'\x00'), ('dup', b'%d' % i), ('empty', b'')][: i % 5]
        # (kafka-python refuses a record with neither key nor value; librdkafka sends it)
        sent['kafka-python'].append((i % 2, b'k' if key is None and value is None else key, value, headers, base_ts + i))
        ck_headers = headers + [('null', None)] if i % 3 == 0 else headers
        sent['librdkafka'].append((i % 2, key, value, ck_headers, base_ts + 1000 + i))
    kp = KafkaProducer(bootstrap_servers=broker, acks='all', api_version_auto_timeout_ms=5000)
    for p, key, value, headers, ts in sent['kafka-python']:
        kp.send('fid', value=value, key=key, headers=headers, partition=p, timestamp_ms=ts)
    kp.flush()
    kp.close()
    ck = Producer({'bootstrap.servers': broker, 'acks': 'all', 'linger.ms': 5})
    errors = []
    for p, key, value, headers, ts in sent['librdkafka']:
        ck.produce('fid', value=value, key=key, headers=headers, partition=p, timestamp=ts,
                   on_delivery=lambda err, m: err and errors.append(err))
    ck.flush(20)
    check('fidelity: 80 records acknowledged', not errors, errors[:3])
    want = sorted([(p, key, value, headers, ts) for rows in sent.values() for p, key, value, headers, ts in rows],
                  key=lambda r: r[4])
    cur.execute("""SELECT "partition", key, value, header_keys, header_values,
                          (extract(epoch FROM created_at) * 1000)::bigint
                     FROM generate_series(0, 1) p, pgtopic.fetch_records('fid', p, 0, 1000)""")
    stored = sorted([(p, bytes(k) if k is not None else None, bytes(v) if v is not None else None,
                      list(zip(hk or [], [bytes(x) if x is not None else None for x in (hv or [])])), ts)
                     for p, k, v, hk, hv, ts in cur.fetchall()], key=lambda r: r[4])
    check('fidelity: pgtopic.fetch_records returns every record byte for byte (keys, values, headers, timestamps)',
          stored == want, [(a, b) for a, b in zip(stored, want) if a != b][:2])

    def same(got):
        got = sorted(got, key=lambda r: r[4])
        return got == want, [(a, b) for a, b in zip(got, want) if a != b][:2] or (len(got), len(want))

    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=broker, api_version_auto_timeout_ms=5000, enable_auto_commit=False,
                      consumer_timeout_ms=1500, check_crcs=True)
    c.assign([TopicPartition('fid', p) for p in range(2)])
    c.seek_to_beginning()
    got = [(m.partition, m.key, m.value, list(m.headers), m.timestamp) for m in c]
    c.close()
    ok, why = same(got)
    check('fidelity: kafka-python reads them back byte for byte, headers in order', ok, why)

    from confluent_kafka import Consumer, TopicPartition as CTP, OFFSET_BEGINNING
    c = Consumer({'bootstrap.servers': broker, 'group.id': 'unused', 'enable.auto.commit': False, 'check.crcs': True})
    c.assign([CTP('fid', p, OFFSET_BEGINNING) for p in range(2)])
    got = []
    deadline = time.time() + 20
    while len(got) < len(want) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.partition(), m.key(), m.value(), list(m.headers() or []), m.timestamp()[1]))
    c.close()
    ok, why = same(got)
    check('fidelity: confluent-kafka reads them back byte for byte, headers in order, nulls kept', ok, why)
    conn.close()


def crash_test(server, bindir, broker):
    """SIGKILL the postmaster while a librdkafka producer (acks=all) runs; after the restart every
    acknowledged message is stored exactly once."""
    import psycopg2

    conn = psycopg2.connect(server.dsn)
    conn.autocommit = True
    conn.cursor().execute("SELECT pgtopic.create_topic('crash', 3)")
    conn.close()
    acked, failed, _, before, _ = produce_through_kills(
        server, bindir, {'bootstrap.servers': broker, 'acks': 'all', 'linger.ms': 5, 'message.timeout.ms': 60000,
                         'retry.backoff.ms': 200, 'reconnect.backoff.max.ms': 1000, 'log_level': 0},
        'crash', 3, kills=1, warmup_s=1.5, settle_s=2, flush_s=60)
    stored = {}
    for values in stored_values(server.dsn, 'crash', 3).values():
        for v in values:
            stored[v] = stored.get(v, 0) + 1
    missing = [v for v in acked if v not in stored]
    twice = [v for v in acked if stored.get(v, 0) > 1]
    check(f'crash: {len(acked)} acknowledged ({before[0]} before the SIGKILL), every one stored', before[0] > 0 and
          not missing and not failed, (len(missing), missing[:3], failed[:3]))
    check('crash: ... exactly once', not twice, twice[:5])


if __name__ == '__main__':
    sys.exit(main())
