#!/usr/bin/python3
"""Consumer groups through PgBouncer in transaction mode (issue 12, item 3).

    pgbouncer_check.py [--seconds 20] [--members 4] [--pool 2] [--partitions 4] [--seed 1]
                       [--dir /tmp/pgtopic-pgbouncer] [--port 54840] [--bouncer-port 54841]
                       [--bindir /usr/lib/postgresql/15/bin] [--pgbouncer /usr/sbin/pgbouncer]

Starts a throwaway server (pgtopic.session_timeout = 2s) and Debian's pgbouncer in front of it,
pool_mode = transaction with a pool of --pool server connections, then for --seconds:

- a producer commits batches of keyed messages on --partitions partitions (direct connection);
- --members group members, each with its own member_id, connected through the pool: each poll is
  BEGIN; INSERT INTO processed SELECT ... FROM pgtopic.consume(..., member_id => id);
  SELECT pgtopic.commit(..., member_id => id); COMMIT (a quarter of them auto-commit style instead:
  consume in one statement, record in the next, the next consume commits);
- a killer picks a member every 0.3-1.2 s and kills it: its client connection is dropped, half the
  time in the middle of a poll's transaction; a new member with a new member_id takes its place.
  The dead member's lease expires and its partitions go to the members that poll.

Then the producer stops and the members drain until the group's lag is 0. It reports produced,
delivered, lost and duplicated counts and exits 1 unless lost = 0 and the server log shows no
crash. Needs Debian's python3-psycopg2; run as root (the server and pgbouncer run as postgres).
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import throwaway_server  # noqa: E402

import psycopg2  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=float, default=20)
    ap.add_argument('--members', type=int, default=4)
    ap.add_argument('--pool', type=int, default=2)
    ap.add_argument('--partitions', type=int, default=4)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--dir', default='/tmp/pgtopic-pgbouncer')
    ap.add_argument('--port', type=int, default=54840)
    ap.add_argument('--bouncer-port', type=int, default=54841)
    ap.add_argument('--bindir', default='/usr/lib/postgresql/15/bin')
    ap.add_argument('--pgbouncer', default='/usr/sbin/pgbouncer')
    args = ap.parse_args()
    rng = random.Random(args.seed)

    server = throwaway_server.ThrowawayServer(args.bindir, os.path.join(args.dir, 'pg'), args.port,
                                              settings="pgtopic.session_timeout = '2s'\nmax_connections = 40\n")
    server.start()
    bouncer = None
    try:
        setup = throwaway_server.connect_with_extension(server.dsn)
        cur = setup.cursor()
        cur.execute("SELECT pgtopic.create_topic('pgb', %s)", (args.partitions,))
        cur.execute('CREATE TABLE processed ("partition" int, msg_offset bigint, member text)')
        cur.execute('GRANT ALL ON processed TO PUBLIC')

        bdir = os.path.join(args.dir, 'bouncer')
        shutil.rmtree(bdir, ignore_errors=True)
        os.makedirs(bdir)
        with open(os.path.join(bdir, 'users.txt'), 'w') as f:
            f.write('"postgres" ""\n')
        ini = os.path.join(bdir, 'pgbouncer.ini')
        with open(ini, 'w') as f:
            f.write(f"""[databases]
postgres = host={server.dir} port={args.port} dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {args.bouncer_port}
unix_socket_dir =
auth_type = trust
auth_file = {bdir}/users.txt
pool_mode = transaction
default_pool_size = {args.pool}
max_client_conn = 100
logfile = {bdir}/pgbouncer.log
pidfile = {bdir}/pgbouncer.pid
""")
        if os.geteuid() == 0:
            for path in (bdir, ini, os.path.join(bdir, 'users.txt')):
                shutil.chown(path, 'postgres', 'postgres')
        bouncer = subprocess.Popen(throwaway_server.as_postgres([args.pgbouncer, ini]),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pooled_dsn = f'host=127.0.0.1 port={args.bouncer_port} dbname=postgres user=postgres'
        for _ in range(100):
            try:
                psycopg2.connect(pooled_dsn).close()
                break
            except psycopg2.OperationalError:
                time.sleep(0.1)

        stop = threading.Event()
        draining = threading.Event()
        produced = [0]
        errors = []

        def producer():
            conn = psycopg2.connect(server.dsn)
            conn.autocommit = True
            c = conn.cursor()
            n = 0
            while not stop.is_set():
                keys = [f'k{rng.randrange(1000)}' for _ in range(20)]
                c.execute("SELECT pgtopic.produce_batch('pgb', %s::text[], %s::text[])",
                          ([f'm{n + i}' for i in range(20)], keys))
                n += 20
                produced[0] = n
                time.sleep(0.05)
            conn.close()

        kills = [0]
        members_started = [0]
        lock = threading.Lock()

        def member(slot):
            while not (draining.is_set() and stop.is_set() and slot.get('done')):
                member_id = str(uuid.uuid4())
                autocommit_style = rng.random() < 0.25
                with lock:
                    members_started[0] += 1
                try:
                    conn = psycopg2.connect(pooled_dsn)
                    conn.autocommit = True
                    c = conn.cursor()
                    slot['kill'] = False
                    while True:
                        if slot['kill']:
                            slot['kill'] = False
                            if rng.random() < 0.5:
                                c.execute('BEGIN')
                                c.execute('INSERT INTO processed SELECT "partition", msg_offset, %s '
                                          "FROM pgtopic.consume('pgb', 'g', 50, 0, member_id => %s)",
                                          (member_id, member_id))
                            conn.close()  # the client dies (mid-transaction half the time)
                            break
                        if autocommit_style:
                            c.execute('SELECT "partition", msg_offset FROM '
                                      "pgtopic.consume('pgb', 'g', 50, 0, member_id => %s)", (member_id,))
                            rows = c.fetchall()
                            if rows:
                                c.execute('INSERT INTO processed SELECT p, o, %s FROM unnest(%s::int[], %s::bigint[]) AS u(p, o)',
                                          (member_id, [r[0] for r in rows], [r[1] for r in rows]))
                        else:
                            c.execute('BEGIN')
                            c.execute('INSERT INTO processed SELECT "partition", msg_offset, %s '
                                      "FROM pgtopic.consume('pgb', 'g', 50, 0, member_id => %s)",
                                      (member_id, member_id))
                            c.execute("SELECT pgtopic.commit('pgb', 'g', member_id => %s)", (member_id,))
                            c.execute('COMMIT')
                        if draining.is_set() and slot.get('done'):
                            c.execute("SELECT pgtopic.leave('pgb', 'g', member_id => %s)", (member_id,))
                            conn.close()
                            return
                        time.sleep(0.01)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    time.sleep(0.1)

        slots = [{'kill': False} for _ in range(args.members)]
        threads = [threading.Thread(target=producer)] + [threading.Thread(target=member, args=(s,)) for s in slots]
        for t in threads:
            t.start()
        deadline = time.time() + args.seconds
        while time.time() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            rng.choice(slots)['kill'] = True
            kills[0] += 1
        stop.set()
        draining.set()
        threads[0].join()
        total = produced[0]
        # drain: until every produced message was recorded at least once
        drain_deadline = time.time() + 120
        delivered = 0
        while time.time() < drain_deadline:
            cur.execute('SELECT count(DISTINCT ("partition", msg_offset)) FROM processed')
            delivered = cur.fetchone()[0]
            if delivered >= total:
                break
            time.sleep(0.5)
        for s in slots:
            s['done'] = True
        for t in threads[1:]:
            t.join(timeout=30)
        cur.execute('SELECT count(*), count(DISTINCT ("partition", msg_offset)) FROM processed')
        rows, distinct = cur.fetchone()
        cur.execute("SELECT count(*) FROM generate_series(0, %s) p, LATERAL pgtopic.fetch('pgb', p, 0, 100000) f "
                    "WHERE NOT EXISTS (SELECT 1 FROM processed x WHERE x.\"partition\" = f.\"partition\" "
                    "AND x.msg_offset = f.msg_offset)", (args.partitions - 1,))
        lost = cur.fetchone()[0]
        crashes, _ = throwaway_server.crash_lines(server.log)
        print(f'pgbouncer transaction mode, pool {args.pool}, {args.members} members with member_id, '
              f'{args.seconds:.0f} s: produced {total}, delivered {distinct}, lost {lost}, '
              f'duplicated {rows - distinct}, kills {kills[0]}, members started {members_started[0]}, '
              f'client errors {len(errors)}')
        for e in errors[:5]:
            print('  client error:', e)
        for line in crashes:
            print('  server:', line)
        ok = lost == 0 and distinct == total and not crashes
        print('OK' if ok else 'FAILED')
        return 0 if ok else 1
    finally:
        if bouncer is not None:
            bouncer.terminate()
            bouncer.wait(timeout=10)
        server.stop()


if __name__ == '__main__':
    sys.exit(main())
