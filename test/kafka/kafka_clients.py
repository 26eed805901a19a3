#!/usr/bin/env python3
"""What Kafka clients can do with pgtopic's listener today (docs/kafka.md), with Debian's
kafka-python 2.0.2 (python3-kafka) and confluent-kafka 1.7 on librdkafka 2.0.2
(python3-confluent-kafka), against a throwaway server: list topics and partitions, create
(with a config, and again: TOPIC_ALREADY_EXISTS) and delete topics, beginning/end offsets (the
end is the last stable offset: a transaction held open in SQL holds it back) and offsets for
times. Fails on any difference or a crash in the server log.

    /usr/bin/python3 test/kafka/kafka_clients.py [--bindir DIR] [--port N] [--kafka-port N]
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from throwaway_server import ThrowawayServer, as_postgres, connect_with_extension, crash_lines  # noqa: E402

failures = []


def check(name, ok, got=None):
    print(('ok   ' if ok else 'FAIL ') + name + ('' if ok else f': got {got!r}'))
    if not ok:
        failures.append(name)


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

    server = ThrowawayServer(args.bindir, args.dir, args.port, settings="pgtopic.database = 'postgres'\n")
    server.start()
    try:
        conn = connect_with_extension(server.dsn)
        cur = conn.cursor()
        cur.execute("CREATE ROLE kafka_client LOGIN")
        cur.execute("GRANT pgtopic_admin TO kafka_client")
        cur.execute("SELECT pgtopic.create_topic('orders', 3)")
        cur.execute("SELECT pgtopic.produce('orders', 'a'::text, partition => 0)")
        cur.execute("SELECT pgtopic.produce('orders', 'b'::text, partition => 0)")
        conn.close()
        with open(os.path.join(server.data, 'postgresql.conf'), 'a') as f:
            f.write(f"pgtopic.kafka_listen_addresses = '127.0.0.1'\npgtopic.kafka_port = {args.kafka_port}\n"
                    "pgtopic.kafka_role = 'kafka_client'\n")
        subprocess.run(as_postgres([os.path.join(args.bindir, 'pg_ctl'), '-D', server.data, '-l', server.log, '-w',
                                    'restart']), check=True, stdout=subprocess.DEVNULL)
        run_clients(f'127.0.0.1:{args.kafka_port}', server.dsn)
        lines, _ = crash_lines(server.log)
        check('no crash in the server log', not lines, lines)
    finally:
        server.stop()
    print('kafka_clients: ' + ('ok' if not failures else f'{len(failures)} FAILED'))
    return 1 if failures else 0


def run_clients(broker, dsn):
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

    # What Kafka clients must see: pgtopic's own log start and last stable offsets (after the
    # restart above, a partition that had messages resumes at its durable reservation: a gap).
    with psycopg2.connect(dsn) as sq:
        with sq.cursor() as cur:
            cur.execute("SELECT log_start_offset, last_stable_offset FROM pgtopic.partitions "
                        "WHERE topic = 'orders' ORDER BY \"partition\"")
            sql_offsets = cur.fetchall()
    sql_lso = [o[1] for o in sql_offsets]
    check('SQL: partition 1 held at 1 by the open transaction, partition 2 empty', sql_lso[1:] == [1, 0], sql_offsets)

    consumer = KafkaConsumer(bootstrap_servers=broker, api_version_auto_timeout_ms=5000, request_timeout_ms=6000)
    check('kafka-python: partitions_for_topic', consumer.partitions_for_topic('orders') == {0, 1, 2})
    tps = [TopicPartition('orders', p) for p in range(3)]
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    check('kafka-python: beginning_offsets', [begin[tp] for tp in tps] == [0, 0, 0], begin)
    check('kafka-python: end_offsets are the last stable offsets', [end[tp] for tp in tps] == sql_lso, (end, sql_lso))
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
    check('confluent-kafka: watermarks (high = last stable offset)', marks == [(0, o) for o in sql_lso], (marks, sql_lso))
    t = c.offsets_for_times([CTP('orders', 0, 1000)], timeout=10)
    check('confluent-kafka: offsets_for_times', t[0].offset == 0 and t[0].error is None, t)
    c.close()
    held.rollback()
    held.close()


if __name__ == '__main__':
    sys.exit(main())
