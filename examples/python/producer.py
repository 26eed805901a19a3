#!/usr/bin/python3
"""pgtopic producer: sends COUNT JSON messages to a topic, keyed, in batches (produce_batch).

    /usr/bin/python3 examples/python/producer.py --dsn "host=... dbname=..." --topic orders --count 1000

A batch counts as sent when its COMMIT returns without error and without a WARNING. On a lost
connection (a failover: give a multi-host DSN with target_session_attrs=read-write) it
reconnects with back-off and sends the batch again, so a batch whose COMMIT outcome was unknown
may arrive twice (at least once, as Kafka's producer retries without idempotence).
"""
import argparse
import json
import sys
import time

import psycopg2


def connect(dsn, stop_at):
    """Connects with exponential back-off (0.1 s doubling to 5 s) until stop_at."""
    delay = 0.1
    while True:
        try:
            return psycopg2.connect(dsn, application_name="pgtopic-example-producer")
        except psycopg2.OperationalError as e:
            if time.monotonic() + delay > stop_at:
                raise
            print("connect failed (%s), retrying in %.1fs" % (str(e).strip(), delay), file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def send(conn, topic, values, keys):
    """One batch in one transaction; True once the COMMIT is acknowledged."""
    with conn.cursor() as cur:
        cur.execute("SELECT pgtopic.produce_batch(%s, %s::jsonb[], %s::text[])", (topic, values, keys))
    del conn.notices[:]
    conn.commit()
    # "canceling wait for synchronous replication ... committed locally": not acknowledged by a
    # standby (a cancel or a terminated session during a failover); send again.
    return not any("WARNING" in n for n in conn.notices)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="dbname=postgres")
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--keys", type=int, default=10, help="distinct keys (messages of one key stay in order)")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up reconnecting after this many seconds")
    args = ap.parse_args()

    stop_at = time.monotonic() + args.timeout
    conn = connect(args.dsn, stop_at)
    sent = retries = 0
    while sent < args.count:
        n = min(args.batch, args.count - sent)
        ids = range(sent, sent + n)
        values = [json.dumps({"id": i, "item": "widget", "qty": i % 7 + 1}) for i in ids]
        keys = ["customer-%d" % (i % args.keys) for i in ids]
        try:
            if send(conn, args.topic, values, keys):
                sent += n
                stop_at = time.monotonic() + args.timeout
                continue
            print("batch committed without a standby's acknowledgement; sending it again", file=sys.stderr)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            print("connection lost (%s); reconnecting" % str(e).strip(), file=sys.stderr)
        except psycopg2.errors.ReadOnlySqlTransaction as e:
            print("server is read-only (%s); reconnecting" % str(e).strip(), file=sys.stderr)
        retries += 1
        try:
            conn.close()
        except Exception:
            pass
        if time.monotonic() > stop_at:
            print("gave up after %d of %d messages" % (sent, args.count), file=sys.stderr)
            return 1
        conn = connect(args.dsn, stop_at)
    conn.close()
    print("produced %d messages to %s%s" % (sent, args.topic, " (%d batches sent again)" % retries if retries else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
