#!/usr/bin/python3
"""pgtopic producer: sends COUNT JSON messages to a topic, keyed, in batches (produce_batch).

    /usr/bin/python3 examples/python/producer.py --dsn "host=... dbname=..." --topic orders --count 1000
"""
import argparse
import json
import sys

import psycopg2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="dbname=postgres")
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--keys", type=int, default=10, help="distinct keys (messages of one key stay in order)")
    args = ap.parse_args()

    conn = psycopg2.connect(args.dsn)
    sent = 0
    with conn, conn.cursor() as cur:
        while sent < args.count:
            n = min(args.batch, args.count - sent)
            ids = range(sent, sent + n)
            values = [json.dumps({"id": i, "item": "widget", "qty": i % 7 + 1}) for i in ids]
            keys = ["customer-%d" % (i % args.keys) for i in ids]
            cur.execute("SELECT pgtopic.produce_batch(%s, %s::jsonb[], %s::text[])", (args.topic, values, keys))
            sent += cur.fetchone()[0]
    conn.close()
    print("produced %d messages to %s" % (sent, args.topic))
    return 0


if __name__ == "__main__":
    sys.exit(main())
