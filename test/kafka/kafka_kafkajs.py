#!/usr/bin/env python3
"""kafkajs (npm, the exact version in test/kafka/kafkajs/package.json; `npm ci` there, as
scripts/setup does) against pgtopic's Kafka listener on a throwaway server, the node side being
test/kafka/kafkajs/kjs.js:
- admin: createTopics (and again: already exists), fetchTopicMetadata (partitions, leader 1),
  deleteTopics;
- a kafkajs producer (acks -1, 200 keyed messages with headers in 4 sends, default partitioner)
  is read back by pgtopic.fetch at the acknowledged partitions and offsets, each key on the
  partition pgtopic.key_partition gives it, and pgtopic.produce with that key chooses the same;
- kafkajs reads every partition without a group (its Cluster/Broker ListOffsets and Fetch,
  decoded by kafkajs): SQL-produced and kafkajs-produced messages exactly once, in offset order,
  at pgtopic's offsets; fetchTopicOffsets high = the last stable offset;
- a SQL transaction held open holds the read at the LSO; a rolled-back SQL produce is a gap
  skipped without error;
- examples/node/kafkajs-producer-consumer.js runs against the same server (10 messages).

    /usr/bin/python3 test/kafka/kafka_kafkajs.py [--bindir DIR] [--port N] [--kafka-port N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, HERE)
from throwaway_server import crash_lines  # noqa: E402
from kafka_test_server import check, failures, start_with_listener  # noqa: E402

JS_DIR = os.path.join(HERE, 'kafkajs')
N = 200


def kjs(broker, *args):
    r = subprocess.run(['node', os.path.join(JS_DIR, 'kjs.js'), broker] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {'error': f'exit {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}'}


def sql_messages(cur, topic, partitions):
    """{partition: [[offset, key, value, headers]]} via pgtopic.fetch, in offset order."""
    out = {}
    for part in range(partitions):
        cur.execute("SELECT msg_offset, key, convert_from(value, 'UTF8'), headers FROM pgtopic.fetch(%s, %s, 0, 100000)"
                    " ORDER BY msg_offset", (topic, part))
        out[str(part)] = [[str(o), k, v, h or {}] for o, k, v, h in cur.fetchall()]
    return out


def lso(cur, topic):
    cur.execute("SELECT partition, last_stable_offset FROM pgtopic.partitions WHERE topic = %s ORDER BY 1", (topic,))
    return {p: str(o) for p, o in cur.fetchall()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--dir', default='/tmp/pgtopic-kafka-kafkajs')
    ap.add_argument('--port', type=int, default=54612)
    ap.add_argument('--kafka-port', type=int, default=19098)
    args = ap.parse_args()
    if not shutil.which('node') or not os.path.isdir(os.path.join(JS_DIR, 'node_modules', 'kafkajs')):
        print('kafka_kafkajs: FAIL: node or kafkajs missing (scripts/setup runs npm ci in test/kafka/kafkajs)')
        return 1
    server = start_with_listener(args, ["SELECT pgtopic.create_topic('kjs', 5)",
                                        "SELECT pgtopic.produce('kjs', 'sql-0'::text, 'sk0', partition => 0)",
                                        "SELECT pgtopic.produce('kjs', 'sql-1'::text, 'sk1', partition => 3)",
                                        "SELECT pgtopic.create_topic('kjs_lso', 2)"])
    try:
        run(f'127.0.0.1:{args.kafka_port}', server.dsn)
        lines, _ = crash_lines(server.log)
        check('no crash in the server log', not lines, lines)
    finally:
        server.stop()
    print('kafka_kafkajs: ' + ('ok' if not failures else f'{len(failures)} FAILED'))
    return 1 if failures else 0


def run(broker, dsn):
    import psycopg2
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()

    # ---- admin
    r = kjs(broker, 'admin')
    check('kafkajs admin: createTopics true, then false (exists)',
          r.get('created') is True and r.get('createdAgain') is False, r)
    check('kafkajs admin: fetchTopicMetadata: 3 partitions led by node 1',
          r.get('metadata') == [{'name': 'kjs_admin', 'partitions': [[0, 1], [1, 1], [2, 1]]}], r)
    check('kafkajs admin: deleteTopics', 'kjs_admin' not in r.get('listAfterDelete', ['kjs_admin']), r)
    cur.execute("SELECT count(*) FROM pgtopic.topics WHERE topic = 'kjs_admin'")
    check('kafkajs admin: the topic is gone in SQL', cur.fetchone()[0] == 0)

    # ---- producer: acks -1, keyed, headers, default partitioner
    r = kjs(broker, 'produce', 'kjs', N)
    check('kafkajs producer: 4 sends acknowledged without error',
          'sent' in r and all(e == 0 for s in r['sent'] for _, e, _ in s['result']), r)
    stored = sql_messages(cur, 'kjs', 5)
    where = {}  # value -> (partition, offset, key, headers)
    for part, msgs in stored.items():
        for off, key, value, headers in msgs:
            where[value] = (int(part), int(off), key, headers)
    values = [f'kjs-{i}' for i in range(N)]
    check(f'kafkajs producer: all {N} messages stored once', all(v in where for v in values)
          and sum(len(m) for m in stored.values()) == N + 2, len(where))
    # Acknowledged offsets: per send, a partition's messages get consecutive offsets from its base.
    expected = {}
    for s in r.get('sent', []):
        base = {p: int(b) for p, _, b in s['result']}
        for v in s['values']:
            if v in where:
                p = where[v][0]
                expected[v] = (p, base.get(p, -1))
                base[p] = base.get(p, -1) + 1
    bad = [v for v in values if v not in where or expected.get(v) != where[v][:2]]
    check('kafkajs producer: pgtopic.fetch has each message at the acknowledged partition/offset', not bad, bad[:5])
    bad = [v for v in values if v in where and
           (where[v][2] != 'key-' + v[4:] or where[v][3] != {'h1': 'one-' + v[4:], 'h2': 'two'})]
    check('kafkajs producer: keys and headers as sent', not bad, [where.get(v) for v in bad[:3]])
    cur.execute("SELECT array_agg(pgtopic.key_partition('key-' || i, 5) ORDER BY i) FROM generate_series(0, %s) i", (N - 1,))
    kp = cur.fetchone()[0]
    bad = [i for i in range(N) if values[i] in where and where[values[i]][0] != kp[i]]
    check(f'kafkajs default partitioner (murmur2) = pgtopic.key_partition for {N} keys', not bad and len(where) >= N, bad[:5])
    cur.execute("SELECT pgtopic.create_topic('kjs_keys', 5)")
    sqlp = []
    for i in range(N):
        cur.execute("SELECT partition FROM pgtopic.produce('kjs_keys', 'x'::text, %s)", (f'key-{i}',))
        sqlp.append(cur.fetchone()[0])
    bad = [i for i in range(N) if values[i] in where and where[values[i]][0] != sqlp[i]]
    check(f'kafkajs default partitioner = pgtopic.produce with the same key ({N} keys)', not bad, bad[:5])
    print(f'     partitions of the {N} keys: ' +
          ', '.join(f'{p}: {sum(1 for x in sqlp if x == p)}' for p in range(5)))

    # ---- a read by kafkajs without a group: SQL and kafkajs messages, exactly once, in order
    cur.execute("SELECT pgtopic.produce('kjs', 'sql-2'::text, 'sk2', partition => 4)")
    stored = sql_messages(cur, 'kjs', 5)
    r = kjs(broker, 'read', 'kjs', 5)
    check('kafkajs read: no error', 'error' not in r and r.get('errors') == [], r.get('error') or r.get('errors'))
    check('kafkajs read: every message exactly once, in offset order, at pgtopic\'s offsets',
          r.get('partitions') == stored,
          {p: (len(r.get('partitions', {}).get(p, [])), len(stored[p])) for p in stored})
    want = lso(cur, 'kjs')
    check('kafkajs fetchTopicOffsets: high = pgtopic\'s last stable offset, low 0',
          r.get('offsets') == [[p, '0', want[p]] for p in range(5)], (r.get('offsets'), want))

    # ---- LSO: a SQL transaction held open holds the read; a rollback is a gap skipped
    cur.execute("SELECT pgtopic.produce('kjs_lso', 'before'::text, partition => 0)")
    held = psycopg2.connect(dsn)
    hc = held.cursor()
    hc.execute("SELECT pgtopic.produce('kjs_lso', 'held'::text, partition => 0)")
    cur.execute("SELECT pgtopic.produce('kjs_lso', 'after'::text, partition => 0)")
    r = kjs(broker, 'read', 'kjs_lso', 2)
    got = [m[2] for m in r.get('partitions', {}).get('0', [])]
    check('kafkajs read: an open SQL transaction holds it at the LSO (1)',
          got == ['before'] and r.get('offsets', [[0, 0, 0]])[0][2] == '1' and r.get('errors') == [], r)
    held.commit()
    held.close()
    r = kjs(broker, 'read', 'kjs_lso', 2)
    got = [(m[0], m[2]) for m in r.get('partitions', {}).get('0', [])]
    check('kafkajs read: after COMMIT the held and later messages come, in offset order',
          got == [('0', 'before'), ('1', 'held'), ('2', 'after')] and r.get('errors') == [], r)
    rb = psycopg2.connect(dsn)
    rbc = rb.cursor()
    rbc.execute("SELECT pgtopic.produce('kjs_lso', 'rolled-back'::text, partition => 1)")
    rb.rollback()
    rb.close()
    cur.execute("SELECT pgtopic.produce('kjs_lso', 'p1-before'::text, partition => 1)")
    rb = psycopg2.connect(dsn)
    rbc = rb.cursor()
    rbc.execute("SELECT pgtopic.produce('kjs_lso', 'rolled-back-2'::text, partition => 1)")
    rb.rollback()
    rb.close()
    cur.execute("SELECT pgtopic.produce('kjs_lso', 'p1-after'::text, partition => 1)")
    stored = sql_messages(cur, 'kjs_lso', 2)
    offs = [int(m[0]) for m in stored['1']]
    r = kjs(broker, 'read', 'kjs_lso', 2)
    got = r.get('partitions', {}).get('1', [])
    check('kafkajs read: a rolled-back SQL produce is a gap, skipped without error',
          len(offs) == 2 and offs[1] - offs[0] > 1 and got == stored['1'] and r.get('errors') == []
          and 'error' not in r, (offs, r))
    check('kafkajs read: rolled-back messages never returned',
          not any('rolled-back' in m[2] for p in r.get('partitions', {}).values() for m in p), r)

    # ---- the example (examples/node/kafkajs-producer-consumer.js), with this directory's kafkajs
    example = os.path.join(HERE, '..', '..', 'examples', 'node', 'kafkajs-producer-consumer.js')
    env = dict(os.environ, NODE_PATH=os.path.join(JS_DIR, 'node_modules'))
    e = subprocess.run(['node', example, '--broker', broker, '--count', '10'], capture_output=True, text=True,
                       timeout=60, env=env)
    cur.execute("SELECT sum(n) FROM (SELECT count(*) AS n FROM generate_series(0, 2) p,"
                " LATERAL pgtopic.fetch('kafkajs_demo', p, 0, 1000)) s")
    stored_n = cur.fetchone()[0]
    check('example kafkajs-producer-consumer.js: 10 produced, stored, read back',
          e.returncode == 0 and e.stdout.strip().endswith('read 10 messages') and stored_n == 10,
          (e.returncode, stored_n, e.stdout[-300:], e.stderr[:1500]))
    conn.close()


if __name__ == '__main__':
    sys.exit(main())
