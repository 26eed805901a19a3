#!/usr/bin/python3
"""pgtopic consumer: wakes on LISTEN pgtopic, consumes as a member of a group, processes each
batch and commits its offsets in the same transaction, and reconnects with back-off when the
server goes away (group membership is re-established by the next consume).

    /usr/bin/python3 examples/python/consumer.py --dsn "host=... dbname=..." --topic orders --group billing
"""
import argparse
import select
import sys
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions


def connect(dsn, stop_at):
    """Connects with exponential back-off (0.1 s doubling to 5 s) until stop_at."""
    delay = 0.1
    while True:
        try:
            conn = psycopg2.connect(dsn, application_name="pgtopic-example-consumer")
            conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with conn.cursor() as cur:
                cur.execute("LISTEN pgtopic")  # again after every reconnect: LISTEN is per session
            return conn
        except psycopg2.OperationalError as e:
            if time.monotonic() + delay > stop_at:
                raise
            print("connect failed (%s), retrying in %.1fs" % (str(e).strip(), delay), file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def process(rows):
    """The application's work. Here: count and show the first few."""
    for partition, offset, key, value in rows[:3]:
        print("  partition %d offset %d key %s value %s" % (partition, offset, key, value))


def consume_batch(conn, topic, group, max_messages):
    """One poll: consume, process and commit in one transaction (exactly once for DB work)."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute(
                "SELECT \"partition\", msg_offset, key, value FROM pgtopic.consume_json(%s, %s, %s)",
                (topic, group, max_messages))
            rows = cur.fetchall()
            process(rows)
            cur.execute("SELECT pgtopic.commit(%s, %s)", (topic, group))
            cur.execute("COMMIT")
        except Exception:
            if not conn.closed:
                cur.execute("ROLLBACK")  # the same messages are handed out again
            raise
    return rows


def wait_for_news(conn, topic, timeout):
    """Sleeps until NOTIFY pgtopic names our topic, or timeout (a polling fallback: NOTIFY is
    not delivered on standbys nor while disconnected)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if select.select([conn], [], [], remaining) != ([], [], []):
            conn.poll()
            news = [n for n in conn.notifies if n.payload == topic]
            conn.notifies.clear()
            if news:
                return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="dbname=postgres")
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--group", default="example")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--expect", type=int, default=0, help="exit 0 after this many messages (0: run forever)")
    ap.add_argument("--timeout", type=float, default=60.0, help="with --expect: give up after this many seconds")
    args = ap.parse_args()

    stop_at = time.monotonic() + args.timeout if args.expect else float("inf")
    received = 0
    conn = connect(args.dsn, stop_at)
    while not args.expect or received < args.expect:
        if time.monotonic() > stop_at:
            print("timed out with %d of %d messages" % (received, args.expect), file=sys.stderr)
            return 1
        try:
            rows = consume_batch(conn, args.topic, args.group, args.batch)
            received += len(rows)
            if rows:
                print("consumed %d (total %d)" % (len(rows), received))
            else:
                wait_for_news(conn, args.topic, 1.0)
        except (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.ReadOnlySqlTransaction) as e:
            print("connection lost (%s); reconnecting" % str(e).strip(), file=sys.stderr)
            try:
                conn.close()
            except Exception:
                pass
            conn = connect(args.dsn, stop_at)
    conn.close()
    print("done: %d messages" % received)
    return 0


if __name__ == "__main__":
    sys.exit(main())
