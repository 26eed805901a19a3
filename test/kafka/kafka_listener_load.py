#!/usr/bin/env python3
"""The Kafka listener under load (docs/kafka.md, "The event loop under load"), on a throwaway
server with log_min_messages = debug1:
  - parked Fetch requests run again only when a partition they wait on may have new data: N
    Fetches parked on an idle topic while SQL commits M times to another topic are not run again
    (the listener's DEBUG1 "parked Fetch run again" lines are counted), and one is answered as soon
    as its own topic gets a message.

    /usr/bin/python3 test/kafka/kafka_listener_load.py [--bindir DIR] [--port N] [--kafka-port N]
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throwaway_server import crash_lines  # noqa: E402
from kafka_test_server import check, failures, start_with_listener  # noqa: E402
import kafka_raw  # noqa: E402


def connect_kafka(port, tries=100):
    for _ in range(tries):
        try:
            c = kafka_raw.Conn(port, timeout=30)
            c.request(18, 0, b'')
            return c
        except OSError:
            time.sleep(0.2)
    raise RuntimeError('the Kafka listener did not come up')


def log_count(path, pattern):
    with open(path, errors='replace') as f:
        return len(re.findall(pattern, f.read()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--dir', default='/tmp/pgtopic-kafka-load')
    ap.add_argument('--port', type=int, default=54630)
    ap.add_argument('--kafka-port', type=int, default=19098)
    ap.add_argument('--fetches', type=int, default=50)
    ap.add_argument('--commits', type=int, default=1000)
    args = ap.parse_args()
    server = start_with_listener(args, ["SELECT pgtopic.create_topic('idle', 1)",
                                        "SELECT pgtopic.create_topic('busy', 1)"],
                                 "pgtopic.kafka_max_connections = 1000\nlog_min_messages = debug1\n")
    try:
        parked_fetches(args, server)
        lines, _ = crash_lines(server.log)
        check('no crash in the server log', not lines, lines)
    finally:
        server.stop()
    print('kafka_listener_load: ' + ('ok' if not failures else f'{len(failures)} FAILED'))
    return 1 if failures else 0


def parked_fetches(args, server):
    import psycopg2
    rerun = r'parked Fetch run again \(new data'
    first = connect_kafka(args.kafka_port)
    conns = [first] + [kafka_raw.Conn(args.kafka_port, timeout=30) for _ in range(args.fetches - 1)]
    for c in conns:
        c.send(1, 4, kafka_raw.fetch_v4_body('idle', 0, 0, max_wait_ms=60000))
    time.sleep(1)
    before = log_count(server.log, rerun)
    pg = psycopg2.connect(server.dsn)
    pg.autocommit = True
    cur = pg.cursor()
    t0 = time.time()
    for i in range(args.commits):
        cur.execute("SELECT pgtopic.produce('busy', %s::text)", ('m%d' % i,))
    elapsed = time.time() - t0
    time.sleep(0.5)
    reruns = log_count(server.log, rerun) - before
    print(f'     {args.fetches} parked fetches on an idle topic, {args.commits} commits to another topic in '
          f'{elapsed:.1f} s: {reruns} re-runs')
    check(f'parked fetches on an idle topic are not run again by commits to another topic ({reruns} re-runs)',
          reruns == 0, reruns)
    t0 = time.time()
    cur.execute("SELECT pgtopic.produce('idle', 'wake'::text)")
    answered = 0
    for c in conns:
        r = c.recv()
        if r is not None and kafka_raw.fetch_v4_first_partition(r)[2] > 0:
            answered += 1
    waited = time.time() - t0
    check(f'a message on their topic answers all {args.fetches} at once ({waited:.2f} s)',
          answered == args.fetches and waited < 5, (answered, waited))
    after_wake = log_count(server.log, rerun) - before
    check(f'... each run again once ({after_wake} re-runs)', after_wake == args.fetches, after_wake)
    pg.close()
    for c in conns:
        c.close()


if __name__ == '__main__':
    sys.exit(main())
