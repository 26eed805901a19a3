#!/usr/bin/python3
"""Chaos checker for pgtopic's delivery rules (issue 3).

    chaos_check.py [--seconds 30] [--producers 4] [--consumers 3] [--partitions 4] [--seed 1]
                   [--dir /tmp/pgtopic-chaos] [--port 55443] [--bindir /usr/lib/postgresql/15/bin]
                   [--dsn DSN]

Starts a throwaway server (or uses --dsn) and, for --seconds, runs:

- producers: transactions of 1-100 keyed messages through produce_batch; about 20% end in
  ROLLBACK and about 5% are held open for 1-3 s before they end, while the others keep committing
  on the same partitions. A message is acknowledged when its COMMIT returned without error.
- one consumer group ("main") of --consumers members, each looping on consume_text (auto-commit)
  or BEGIN; consume_text; commit(); COMMIT (10% of those transactions roll back on purpose: the
  same messages must come again); some polls consume inside a SAVEPOINT rolled back at random,
  or inside a PL/pgSQL EXCEPTION block that fails at random (what they read must come again), or
  as a member_id lease (pgtopic.session_timeout = 3s) instead of the session. A killer ends a random member every 0.3-1.5 s, half the time
  with pg_terminate_backend() and half by dropping its socket; the member reconnects and rejoins.
- a second group ("witness") with one member that is never killed.
- a second topic ("chaos-churn") dropped and re-created every 1-3 s while a producer writes to it
  and one member of group "churn" keeps polling it from the same session: per incarnation and
  partition, what the member got must be the incarnation's first offsets with none skipped
  (a re-created topic starts clean: no position survives from the dropped one), in order, and the
  last incarnation (never dropped) must be delivered completely.

Then producers stop and both groups drain until their lag is 0. It reports acknowledged,
delivered, lost, duplicated, reordered-within-partition and rolled-back-but-delivered counts,
and exits 1 unless lost = reordered = rolled-back-delivered = phantom = 0 and the server log
shows no crash. Needs Debian's python3-psycopg2; run as root or as postgres.
"""

import argparse
import collections
import os
import random
import socket
import uuid
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from throwaway_server import ThrowawayServer, connect_with_extension, crash_lines  # noqa: E402

TOPIC = 'chaos'
MAIN, WITNESS = 'main', 'witness'


SERVER_SETTINGS = """
pgtopic.maintenance_interval = '1s'
pgtopic.session_timeout = '3s'
max_connections = 60
log_line_prefix = '%m [%p] %e: '
log_min_messages = warning
"""


class Ledger:
    """What producers and consumers did, shared by the threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()          # message ids whose COMMIT returned
        self.rolled_back = set()    # message ids of transactions that ended in ROLLBACK
        self.in_doubt = set()       # COMMIT raised: unknown outcome
        self.committed_tx = self.rolled_back_tx = self.held_tx = 0
        self.delivered = {MAIN: collections.Counter(), WITNESS: collections.Counter()}
        self.position = {}          # (partition, offset) -> message id, over both groups
        self.mismatch = []          # one (partition, offset) seen with two different messages
        self.reordered = []         # offsets not increasing within one member session's stream
        self.witness_log = []       # (partition, offset, id) in the witness's delivery order
        self.kills = collections.Counter()
        self.consumer_rollbacks = 0
        self.savepoint_rollbacks = 0
        self.modes = collections.Counter()
        self.restarts = 0           # a session's stream went back over messages delivered before
        self.sessions = 0
        self.errors = collections.Counter()

    def deliver(self, group, rows):
        with self.lock:
            for part, off, value in rows:
                self.delivered[group][value] += 1
                seen = self.position.setdefault((part, off), value)
                if seen != value:
                    self.mismatch.append((part, off, seen, value))
                if group == WITNESS:
                    self.witness_log.append((part, off, value))


def producer(idx, dsn, ledger, stop, rnd):
    conn = psycopg2.connect(dsn, application_name=f'chaos-producer-{idx}')
    cur = conn.cursor()
    seq = 0
    while not stop.is_set():
        n = rnd.randint(1, 100)
        ids, keys = [], []
        for _ in range(n):
            key = 'k%d' % rnd.randrange(16)
            ids.append(f'{idx}:{seq}:{key}')
            keys.append(key)
            seq += 1
        rollback = rnd.random() < 0.2
        hold = rnd.random() < 0.05
        try:
            cur.execute('SELECT pgtopic.produce_batch(%s, %s::text[], %s::text[])', (TOPIC, ids, keys))
            if hold:
                time.sleep(rnd.uniform(1.0, 3.0))
            if rollback:
                conn.rollback()
                with ledger.lock:
                    ledger.rolled_back.update(ids)
                    ledger.rolled_back_tx += 1
                    ledger.held_tx += hold
                continue
        except psycopg2.Error as e:
            conn.rollback()
            with ledger.lock:
                ledger.errors['producer: ' + (e.pgerror or str(e)).strip().splitlines()[0]] += 1
                ledger.rolled_back.update(ids)
            continue
        try:
            conn.commit()
            with ledger.lock:
                ledger.acked.update(ids)
                ledger.committed_tx += 1
                ledger.held_tx += hold
        except psycopg2.Error as e:
            with ledger.lock:
                ledger.in_doubt.update(ids)
                ledger.errors['producer commit: ' + str(e).strip().splitlines()[0]] += 1
            conn = psycopg2.connect(dsn, application_name=f'chaos-producer-{idx}')
            cur = conn.cursor()
    conn.close()


class Member:
    """One consumer thread; reconnects (a new member session) whenever its session is killed."""

    def __init__(self, idx, group, dsn, ledger, stop, rnd, killable):
        self.idx, self.group, self.dsn, self.ledger, self.stop, self.rnd = idx, group, dsn, ledger, stop, rnd
        self.killable = killable
        self.pid = None
        self.member_id = None
        self.drop_requested = threading.Event()
        self.idle_polls = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self):
        conn = psycopg2.connect(self.dsn, application_name=f'chaos-{self.group}-{self.idx}')
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('SELECT pg_backend_pid()')
        self.pid = cur.fetchone()[0]
        with self.ledger.lock:
            self.ledger.sessions += 1
        return conn, cur

    def drop(self, conn):
        # An abrupt loss of the connection: the socket is shut down under the client's feet.
        try:
            socket.socket(fileno=os.dup(conn.fileno())).shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            conn.close()
        except psycopg2.Error:
            pass

    def run(self):
        conn = cur = None
        last = {}  # partition -> last offset handed to this session (reset on a rolled-back poll)
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn, cur = self.connect()
                    last = {}
                    self.member_id = f'chaos-{self.group}-{self.idx}-{uuid.uuid4()}'  # a new lease per session
                if self.drop_requested.is_set():
                    self.drop_requested.clear()
                    self.drop(conn)
                    conn = None
                    time.sleep(self.rnd.uniform(0.05, 0.3))
                    continue
                # How this poll runs (killable members only; the witness auto-commits):
                #   auto       consume_text, auto-commit at the next poll
                #   tx         BEGIN; consume_text; commit(); COMMIT (10% ROLLBACK instead)
                #   savepoint  BEGIN; SAVEPOINT; consume_text; 25% ROLLBACK TO SAVEPOINT (those rows
                #              are not processed: they must come again); commit(); COMMIT
                #   exception  BEGIN; a PL/pgSQL function consumes in an EXCEPTION block that fails
                #              25% of the time (nothing returned: they must come again); commit(); COMMIT
                #   lease      like tx, with this connection's member_id (a lease, not the session)
                mode = 'auto'
                if self.killable:
                    mode = self.rnd.choice(['auto', 'tx', 'tx', 'savepoint', 'exception', 'lease'])
                member_id = self.member_id if mode == 'lease' else None
                in_tx = mode != 'auto'
                if in_tx:
                    cur.execute('BEGIN')
                if mode == 'savepoint':
                    cur.execute('SAVEPOINT s')
                if mode == 'exception':
                    cur.execute('SELECT p, o, v FROM chaos_exception_poll(%s, %s, %s)',
                                (TOPIC, self.group, self.rnd.random() < 0.25))
                else:
                    cur.execute('SELECT "partition", msg_offset, value FROM pgtopic.consume_text(%s, %s, 100, 100, %s)',
                                (TOPIC, self.group, member_id))
                rows = cur.fetchall()
                if mode == 'savepoint':
                    if rows and self.rnd.random() < 0.25:
                        cur.execute('ROLLBACK TO SAVEPOINT s')
                        rows = []
                        with self.ledger.lock:
                            self.ledger.savepoint_rollbacks += 1
                    else:
                        cur.execute('RELEASE SAVEPOINT s')
                before = dict(last)
                for part, off, value in rows:
                    if part in last and off <= last[part]:
                        # Going back is a redelivery when the message was delivered before (the
                        # partition came back to this session after an owner's uncommitted poll);
                        # a message seen for the first time below one already seen is reordered.
                        with self.ledger.lock:
                            if self.ledger.delivered[self.group][value] > 0:
                                self.ledger.restarts += 1
                            else:
                                self.ledger.reordered.append((self.group, self.pid, part, last[part], off))
                    last[part] = off
                if in_tx:
                    if rows and self.rnd.random() < 0.1:
                        cur.execute('ROLLBACK')   # processing failed: the same messages come again
                        last = before
                        with self.ledger.lock:
                            self.ledger.consumer_rollbacks += 1
                        continue
                    cur.execute('SELECT pgtopic.commit(%s, %s, %s)', (TOPIC, self.group, member_id))
                    try:
                        cur.execute('COMMIT')
                    except psycopg2.Error:
                        # Killed during COMMIT: its outcome is unknown to the client. Count the
                        # rows as delivered (if it failed they come again, as duplicates).
                        self.ledger.deliver(self.group, rows)
                        raise
                with self.ledger.lock:
                    self.ledger.modes[mode] += 1
                self.ledger.deliver(self.group, rows)
                self.idle_polls = 0 if rows else self.idle_polls + 1
            except psycopg2.Error as e:
                with self.ledger.lock:
                    self.ledger.errors[f'{self.group} member: ' + str(e).strip().splitlines()[0]] += 1
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(self.rnd.uniform(0.05, 0.3))
        if conn is not None:
            try:
                cur.execute('SELECT pgtopic.leave(%s, %s, %s)', (TOPIC, self.group, self.member_id))
                cur.execute('SELECT pgtopic.leave(%s, %s)', (TOPIC, self.group))
                conn.close()
            except psycopg2.Error:
                pass


CHURN_TOPIC, CHURN_GROUP = 'chaos-churn', 'churn'


class Churn:
    """A topic dropped and re-created while it is produced to and consumed (issue 12 item 5)."""

    def __init__(self, dsn, rnd, partitions=2):
        self.dsn, self.rnd, self.partitions = dsn, rnd, partitions
        self.gate = threading.Lock()   # held by a produce transaction, and by drop + create
        self.incarnation = 0
        self.acked = collections.defaultdict(set)      # (incarnation, partition) -> offsets
        self.delivered = collections.defaultdict(list)  # (incarnation, partition) -> offsets in order
        self.drops = 0
        self.errors = collections.Counter()
        self.stop_churn, self.stop_all = threading.Event(), threading.Event()

    def create(self, cur):
        cur.execute('SELECT pgtopic.create_topic(%s, %s)', (CHURN_TOPIC, self.partitions))

    def churner(self):
        conn = psycopg2.connect(self.dsn, application_name='chaos-churner')
        conn.autocommit = True
        cur = conn.cursor()
        while not self.stop_churn.wait(self.rnd.uniform(1.0, 3.0)):
            with self.gate:
                cur.execute('SELECT pgtopic.drop_topic(%s)', (CHURN_TOPIC,))
                self.create(cur)
                self.incarnation += 1
                self.drops += 1
        conn.close()

    def producer(self):
        conn = psycopg2.connect(self.dsn, application_name='chaos-churn-producer')
        cur = conn.cursor()
        seq = 0
        while not self.stop_all.is_set():
            with self.gate:
                inc = self.incarnation
                values = [f'{inc}:{seq + i}' for i in range(self.rnd.randint(1, 20))]
                seq += len(values)
                try:
                    cur.execute('SELECT "partition", msg_offset FROM pgtopic.produce_batch_offsets(%s, %s::text[])',
                                (CHURN_TOPIC, values))
                    rows = cur.fetchall()
                    conn.commit()
                except psycopg2.Error as e:
                    conn.rollback()
                    self.errors['churn producer: ' + (e.pgerror or str(e)).strip().splitlines()[0]] += 1
                    continue
            for part, off in rows:
                self.acked[(inc, part)].add(off)
            time.sleep(0.01)
        conn.close()

    def consumer(self):
        conn = psycopg2.connect(self.dsn, application_name='chaos-churn-member')
        conn.autocommit = True
        cur = conn.cursor()
        while not self.stop_all.is_set():
            try:
                cur.execute('SELECT "partition", msg_offset, value FROM pgtopic.consume_text(%s, %s, 100, 100)',
                            (CHURN_TOPIC, CHURN_GROUP))
                for part, off, value in cur.fetchall():
                    self.delivered[(int(value.split(':')[0]), part)].append(off)
            except psycopg2.Error as e:
                self.errors['churn member: ' + (e.pgerror or str(e)).strip().splitlines()[0]] += 1
                time.sleep(0.05)
        conn.close()

    def verdict(self):
        """Problems found: skipped or reordered offsets per incarnation, and the last one incomplete."""
        problems = []
        for (inc, part), offs in self.delivered.items():
            distinct = sorted(set(offs))
            if distinct != list(range(len(distinct))):
                problems.append(f'incarnation {inc} partition {part}: got {distinct[:8]}..., not its first offsets')
            first_seen = [o for i, o in enumerate(offs) if o not in offs[:i]]
            if first_seen != distinct:
                problems.append(f'incarnation {inc} partition {part}: out of order')
            if not set(distinct) <= self.acked[(inc, part)]:
                problems.append(f'incarnation {inc} partition {part}: delivered offsets never acknowledged')
        for part in range(self.partitions):
            missing = self.acked[(self.incarnation, part)] - set(self.delivered[(self.incarnation, part)])
            if missing:
                problems.append(f'last incarnation partition {part}: {len(missing)} acknowledged messages not delivered')
        return problems


def killer(dsn, members, ledger, stop, rnd):
    conn = psycopg2.connect(dsn, application_name='chaos-killer')
    conn.autocommit = True
    cur = conn.cursor()
    while not stop.wait(rnd.uniform(0.3, 1.5)):
        m = rnd.choice(members)
        if rnd.random() < 0.5 and m.pid is not None:
            cur.execute('SELECT pg_terminate_backend(%s)', (m.pid,))
            ledger.kills['pg_terminate_backend'] += 1
        else:
            m.drop_requested.set()
            ledger.kills['dropped connection'] += 1
    conn.close()


def total_lag(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute('SELECT group_name, sum(lag)::bigint FROM pgtopic.consumer_lag WHERE topic = %s GROUP BY 1',
                (TOPIC,))
    lags = dict(cur.fetchall())
    conn.close()
    return lags


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seconds', type=float, default=30)
    ap.add_argument('--producers', type=int, default=4)
    ap.add_argument('--consumers', type=int, default=3)
    ap.add_argument('--partitions', type=int, default=4)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--dir', default='/tmp/pgtopic-chaos')
    ap.add_argument('--port', type=int, default=55443)
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--dsn', help='use this server instead of starting one (pgtopic installed and preloaded)')
    ap.add_argument('--drain-timeout', type=float, default=120)
    a = ap.parse_args()

    server = None
    if a.dsn:
        dsn = a.dsn
    else:
        server = ThrowawayServer(a.bindir, a.dir, a.port, SERVER_SETTINGS)
        server.start()
        dsn = server.dsn
    try:
        return run(a, dsn, server)
    finally:
        if server is not None:
            server.stop()


def run(a, dsn, server):
    setup = connect_with_extension(dsn)
    cur = setup.cursor()
    cur.execute('SELECT 1 FROM pgtopic.topics WHERE topic = %s', (TOPIC,))
    if cur.fetchone():
        cur.execute('SELECT pgtopic.drop_topic(%s)', (TOPIC,))
    # Small segments, so that the run also crosses many segment boundaries.
    cur.execute('SELECT pgtopic.create_topic(%s, %s, segment_size => 5000)', (TOPIC, a.partitions))
    # a consumer that processes inside a PL/pgSQL EXCEPTION block which fails at random
    cur.execute("""
        CREATE OR REPLACE FUNCTION chaos_exception_poll(t text, g text, fail boolean)
        RETURNS TABLE (p integer, o bigint, v text) LANGUAGE plpgsql AS $$
        DECLARE ps integer[]; os bigint[]; vs text[];
        BEGIN
            BEGIN
                SELECT array_agg(c."partition"), array_agg(c.msg_offset), array_agg(c.value)
                  INTO ps, os, vs FROM pgtopic.consume_text(t, g, 100, 100) c;
                IF fail AND ps IS NOT NULL THEN
                    RAISE EXCEPTION 'processing failed';
                END IF;
            EXCEPTION WHEN raise_exception THEN
                RETURN;  -- the block's consume is rolled back: those messages come again
            END;
            RETURN QUERY SELECT * FROM unnest(ps, os, vs);
        END $$""")
    cur.execute('SELECT pgtopic.drop_topic(%s, if_exists => true)', (CHURN_TOPIC,))
    master = random.Random(a.seed)
    churn = Churn(dsn, random.Random(master.random()))
    churn.create(cur)
    setup.close()

    ledger = Ledger()
    stop_producers, stop_killer, stop_consumers = threading.Event(), threading.Event(), threading.Event()
    members = [Member(i, MAIN, dsn, ledger, stop_consumers, random.Random(master.random()), True)
               for i in range(a.consumers)]
    witness = Member(0, WITNESS, dsn, ledger, stop_consumers, random.Random(master.random()), False)
    for m in members + [witness]:
        m.thread.start()
    producers = [threading.Thread(target=producer, args=(i, dsn, ledger, stop_producers, random.Random(master.random())),
                                  daemon=True) for i in range(a.producers)]
    for t in producers:
        t.start()
    kill = threading.Thread(target=killer, args=(dsn, members, ledger, stop_killer, random.Random(master.random())),
                            daemon=True)
    kill.start()
    churn_threads = [threading.Thread(target=f, daemon=True) for f in (churn.churner, churn.producer, churn.consumer)]
    for t in churn_threads:
        t.start()

    start = time.time()
    time.sleep(a.seconds)
    stop_producers.set()
    for t in producers:
        t.join()
    stop_killer.set()
    kill.join()
    churn.stop_churn.set()
    churn_threads[0].join()
    produced_s = time.time() - start

    # Final drain: every group at lag 0 and every acknowledged message delivered to both groups.
    deadline = time.time() + a.drain_timeout
    while time.time() < deadline:
        lags = total_lag(dsn)
        with ledger.lock:
            done = all(ledger.acked <= set(ledger.delivered[g]) for g in (MAIN, WITNESS))
        if done and lags.get(MAIN) == 0 and lags.get(WITNESS) == 0 \
                and all(m.idle_polls >= 2 for m in members + [witness]):
            break
        time.sleep(0.2)
    # the churn topic's last incarnation: its member gets everything acknowledged
    churn_deadline = time.time() + 30
    while time.time() < churn_deadline and churn.verdict():
        time.sleep(0.2)
    churn.stop_all.set()
    for t in churn_threads[1:]:
        t.join(timeout=10)
    churn_problems = churn.verdict()
    stop_consumers.set()
    for m in members + [witness]:
        m.thread.join(timeout=10)
    drain_s = time.time() - start - produced_s
    lags = total_lag(dsn)

    # Per key: along the witness's view of each partition (in offset order), each producer's
    # messages of one key must keep the order they were produced in.
    key_order = 0
    last_seq = {}
    for part, off, value in sorted(set(ledger.witness_log)):
        prod, seq, key = value.split(':')
        if last_seq.get((prod, key), -1) >= int(seq):
            key_order += 1
        last_seq[(prod, key)] = int(seq)

    acked = ledger.acked
    main_seen, witness_seen = set(ledger.delivered[MAIN]), set(ledger.delivered[WITNESS])
    lost_main = acked - main_seen
    lost_witness = acked - witness_seen
    rb_delivered = (main_seen | witness_seen) & ledger.rolled_back
    phantom = (main_seen | witness_seen) - acked - ledger.rolled_back - ledger.in_doubt
    dup_main = sum(c - 1 for c in ledger.delivered[MAIN].values() if c > 1)
    dup_witness = sum(c - 1 for c in ledger.delivered[WITNESS].values() if c > 1)
    reordered = len(ledger.reordered) + key_order
    crashes = crash_lines(server.log)[0] if server else []

    print(f'chaos: {a.seconds:g} s, producers={a.producers} consumers={a.consumers} partitions={a.partitions} '
          f'seed={a.seed}; transactions committed={ledger.committed_tx} rolled_back={ledger.rolled_back_tx} '
          f'held_open={ledger.held_tx}; kills={dict(ledger.kills)} member_sessions={ledger.sessions} '
          f'consumer_rollbacks={ledger.consumer_rollbacks} savepoint_rollbacks={ledger.savepoint_rollbacks} '
          f'polls={dict(ledger.modes)} redelivery_restarts={ledger.restarts}; drain {drain_s:.1f} s')
    print(f'chaos: acknowledged={len(acked)} rolled_back_msgs={len(ledger.rolled_back)} in_doubt={len(ledger.in_doubt)} '
          f'delivered_main={sum(ledger.delivered[MAIN].values())} (distinct {len(main_seen)}) '
          f'delivered_witness={sum(ledger.delivered[WITNESS].values())} (distinct {len(witness_seen)}) '
          f'lost={len(lost_main) + len(lost_witness)} duplicated={dup_main + dup_witness} '
          f'(main {dup_main}, witness {dup_witness}) reordered={reordered} '
          f'rolled_back_delivered={len(rb_delivered)} phantom={len(phantom)} offset_mismatch={len(ledger.mismatch)} '
          f'final_lag={lags} crashes={len(crashes)}')
    print(f'chaos: churn topic dropped and re-created {churn.drops} times; acknowledged '
          f'{sum(len(v) for v in churn.acked.values())}, delivered {sum(len(v) for v in churn.delivered.values())}; '
          f'problems={len(churn_problems)}')
    for problem in churn_problems[:5]:
        print(f'  churn: {problem}')
    for what, n in churn.errors.most_common(4):
        print(f'  churn client error x{n}: {what}')
    for what, n in ledger.errors.most_common(8):
        print(f'  client error x{n}: {what}')
    for label, items in (('lost (main)', sorted(lost_main)), ('lost (witness)', sorted(lost_witness)),
                         ('rolled back but delivered', sorted(rb_delivered)), ('phantom', sorted(phantom)),
                         ('reordered', ledger.reordered), ('offset mismatch', ledger.mismatch), ('crash', crashes)):
        if items:
            print(f'  {label}: {len(items)}, e.g. {items[:5]}')

    failed = (lost_main or lost_witness or reordered or rb_delivered or phantom or ledger.mismatch or crashes
              or dup_witness or lags.get(MAIN) != 0 or lags.get(WITNESS) != 0 or not acked
              or sum(ledger.kills.values()) == 0 or churn_problems or churn.drops == 0)
    print('chaos: ' + ('FAIL' if failed else 'ok'))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
