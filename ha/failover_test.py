#!/usr/bin/python3
"""pgtopic failover test: producers and a consumer group against a Patroni cluster (ha/cluster up)
while the leader's postmaster is SIGKILLed, the leader's Patroni is SIGKILLed, and a planned
switchover is made. Normally run through `ha/cluster failover-test`.

For every scenario it prints

  failover: scenario=<name> mode=<sync|strict|async> acked=<n> lost=<n> duplicated=<n> failover_s=<x> rejoin_s=<y>

and a `failover-check:` line with the other checks. Definitions:
  acked       messages whose COMMIT returned without error and without a WARNING (the sync-rep
              cancel WARNING means "committed locally only": not acknowledged)
  lost        acknowledged messages absent from the new leader's log (or at another offset)
  duplicated  acknowledged messages delivered to the group more than once (at least once allows it)
  failover_s  seconds from the fault to the first acknowledged write on the new leader
  rejoin_s    seconds from the fault to the old leader streaming from the new leader

Exit status 1 if a synchronous (sync or strict) scenario lost an acknowledged message or failed
another check (an acknowledged message never delivered, an offset of an acknowledged message
reused, offsets after the failover not above the acknowledged ones, a committed group offset
gone backwards, the old leader not rejoining); asynchronous mode is a control: its losses are
reported, not failed.

Clients route by Patroni's REST API (GET /primary, as an HAProxy check would) and connect with a
multi-host connection string (that node first) and target_session_attrs=read-write. Every wait
is bounded; a statement that does not finish in time has its socket closed (never a cancel: a
cancelled COMMIT waiting for the synchronous standby reports success) and counts as not
acknowledged.
"""
import argparse
import base64
import collections
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg2
import psycopg2.extensions

NODES = ["node1", "node2", "node3"]
SCENARIOS = ["postmaster-kill", "patroni-kill", "switchover"]
SYNC_MODES = ("sync", "strict")

# ---------------------------------------------------------------------------------------------
# Bounded client calls: every psycopg2 call waits through this callback, which gives up at the
# calling thread's deadline. Raising here makes psycopg2 close the connection (no cancel request).
# ---------------------------------------------------------------------------------------------
_tls = threading.local()


class ClientDeadline(Exception):
    pass


def _wait_callback(conn):
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        deadline = getattr(_tls, "deadline", None)
        timeout = 1.0 if deadline is None else deadline - time.monotonic()
        if timeout <= 0:
            raise ClientDeadline("client-side deadline")
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            select.select([fd], [], [], min(timeout, 1.0))
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [fd], [], min(timeout, 1.0))
        else:
            raise psycopg2.OperationalError("bad poll state %r" % state)


psycopg2.extensions.set_wait_callback(_wait_callback)


def set_deadline(seconds):
    _tls.deadline = time.monotonic() + seconds


def close_quietly(conn):
    if conn is None:
        return
    try:
        set_deadline(1.0)
        conn.close()
    except Exception:
        pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The cluster: Patroni REST API, connection strings, PIDs
# ---------------------------------------------------------------------------------------------
class Cluster:
    def __init__(self, directory, port_base, script):
        self.dir = directory.rstrip("/")
        self.script = script
        self.port_base = port_base
        env = {}
        with open(os.path.join(self.dir, "cluster.env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    env[k] = v
        self.password = env["SUPERUSER_PASSWORD"]
        self.rest_auth = "Basic " + base64.b64encode(("patroni:" + env["REST_PASSWORD"]).encode()).decode()
        self.rest_port = {n: port_base + 11 + i for i, n in enumerate(NODES)}
        self.pg_port = {n: port_base + 21 + i for i, n in enumerate(NODES)}
        self.node_of_port = {p: n for n, p in self.pg_port.items()}

    # REST
    def rest(self, node, path, method="GET", body=None, timeout=1.5):
        """(status, parsed JSON or text); status None when the node does not answer."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.rest_port[node], path), method=method)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        if method != "GET":
            req.add_header("Authorization", self.rest_auth)
        try:
            with urllib.request.urlopen(req, data=data, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except Exception:
            return None, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def primary(self):
        """The node whose Patroni answers 200 on GET /primary (None if none or several)."""
        found = [n for n in NODES if self.rest(n, "/primary", timeout=1.0)[0] == 200]
        return found[0] if len(found) == 1 else None

    def dynamic_config(self):
        for n in NODES:
            status, body = self.rest(n, "/config")
            if status == 200 and isinstance(body, dict):
                return body
        return None

    # PostgreSQL
    def dsn(self, first, **extra):
        """Multi-host connection string, `first` first, target_session_attrs=read-write."""
        order = [first] + [n for n in NODES if n != first] if first else list(NODES)
        parts = {
            "host": ",".join("127.0.0.1" for _ in order),
            "port": ",".join(str(self.pg_port[n]) for n in order),
            "dbname": "postgres", "user": "postgres", "password": self.password,
            "target_session_attrs": "read-write", "connect_timeout": "3",
        }
        parts.update(extra)
        return " ".join("%s=%s" % kv for kv in parts.items())

    def node_dsn(self, node, **extra):
        parts = {"host": "127.0.0.1", "port": str(self.pg_port[node]), "dbname": "postgres",
                 "user": "postgres", "password": self.password, "connect_timeout": "3"}
        parts.update(extra)
        return " ".join("%s=%s" % kv for kv in parts.items())

    def query(self, node, sql, args=None, timeout=5.0):
        """One autocommit query on one node; rows, or raises."""
        set_deadline(timeout)
        conn = psycopg2.connect(self.node_dsn(node, application_name="ha-check"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            close_quietly(conn)

    def try_query(self, node, sql, args=None, timeout=5.0):
        try:
            return self.query(node, sql, args, timeout)
        except (psycopg2.Error, ClientDeadline):
            return None

    # Processes (ours: alive, not a zombie, command line naming our scratch directory)
    def _ours(self, pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and (self.dir + "/") in cmd

    def _pid_file(self, path):
        try:
            with open(path) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        return pid if self._ours(pid) else None

    def postmaster_pid(self, node):
        return self._pid_file(os.path.join(self.dir, node, "data", "postmaster.pid"))

    def patroni_pid(self, node):
        return self._pid_file(os.path.join(self.dir, node + ".pid"))

    def start_patroni(self, node):
        subprocess.run([self.script, "start-patroni", node, "--dir", self.dir, "--port-base", str(self.port_base)],
                       check=True, timeout=60, stdout=subprocess.DEVNULL)

    # Health
    def healthy(self, mode):
        """A leader, two replicas streaming from it, the mode in force; returns (ok, why)."""
        leader = self.primary()
        if leader is None:
            return False, "no leader"
        rows = self.try_query(leader, "SELECT application_name, state, sync_state FROM pg_stat_replication", timeout=3)
        if rows is None:
            return False, "leader does not answer"
        streaming = [r for r in rows if r[1] == "streaming"]
        if len(streaming) != 2:
            return False, "%d streaming replicas" % len(streaming)
        ssn = self.try_query(leader, "SHOW synchronous_standby_names", timeout=3)
        if ssn is None:
            return False, "leader does not answer"
        sync = [r for r in rows if r[2] == "sync"]
        if mode in SYNC_MODES and (not sync or not ssn[0][0]):
            return False, "no synchronous standby"
        if mode == "async" and ssn[0][0]:
            return False, "synchronous_standby_names still set"
        for n in NODES:
            if n != leader and self.rest(n, "/replica")[0] != 200:
                return False, "%s not a healthy replica" % n
        return True, leader

    def wait_healthy(self, mode, limit):
        deadline = time.monotonic() + limit
        why = ""
        while time.monotonic() < deadline:
            ok, why = self.healthy(mode)
            if ok:
                return why
            time.sleep(0.25)
        raise RuntimeError("cluster not healthy after %ds: %s" % (limit, why))

    def set_mode(self, mode):
        want = {"synchronous_mode": mode in SYNC_MODES, "synchronous_mode_strict": mode == "strict"}
        cfg = self.dynamic_config() or {}
        if all(bool(cfg.get(k, False)) == v for k, v in want.items()):
            return
        leader = self.primary()
        if leader is None:
            raise RuntimeError("no leader to PATCH /config on")
        status, body = self.rest(leader, "/config", method="PATCH", body=want, timeout=10)
        if status != 200:
            raise RuntimeError("PATCH /config: %s %s" % (status, body))
        log("mode set to %s (%s)" % (mode, want))


# ---------------------------------------------------------------------------------------------
# What the clients saw
# ---------------------------------------------------------------------------------------------
class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}                 # id -> (partition or None, offset or None, node, t)
        self.acks = []                  # (t, node) per acknowledged transaction
        self.outcomes = collections.Counter()
        self.errors = collections.Counter()
        self.deliveries = collections.defaultdict(list)   # id -> [(partition, offset, t, node)]
        self.delivered_at = collections.defaultdict(set)  # (partition, offset) -> ids
        self.commits = []               # (t, partition, next offset) per acknowledged group commit
        self.notifications = []         # (t, node)
        self.trace = []                 # (t, who, node, what): for the diagnosis of a failure

    def ack(self, items, node, t):
        with self.lock:
            for msg_id, partition, offset in items:
                self.acked[msg_id] = (partition, offset, node, t)
            self.acks.append((t, node))
            self.outcomes["acked_txn"] += 1

    def outcome(self, what, error=None):
        with self.lock:
            self.outcomes[what] += 1
            if error:
                self.errors[error] += 1

    def event(self, who, node, what):
        with self.lock:
            self.trace.append((time.monotonic(), who, node, what))

    def delivered(self, rows, node, t, who=None):
        with self.lock:
            if rows:
                spans = collections.defaultdict(list)
                for partition, offset, _ in rows:
                    spans[partition].append(offset)
                self.trace.append((t, who, node, "delivered " + " ".join(
                    "p%d:%d-%d(%d)" % (p, min(o), max(o), len(o)) for p, o in sorted(spans.items()))))
            for partition, offset, msg_id in rows:
                self.deliveries[msg_id].append((partition, offset, t, node))
                self.delivered_at[(partition, offset)].add(msg_id)

    def committed(self, rows, t):
        top = {}
        for partition, offset, _ in rows:
            top[partition] = max(top.get(partition, -1), offset + 1)
        with self.lock:
            for partition, nxt in top.items():
                self.commits.append((t, partition, nxt))

    def first_ack(self, after, node):
        with self.lock:
            times = [t for t, n in self.acks if t > after and n == node]
        return min(times) if times else None

    def undelivered(self):
        with self.lock:
            return [i for i in self.acked if i not in self.deliveries]


def error_name(e):
    if isinstance(e, ClientDeadline):
        return "client-deadline"
    code = getattr(e, "pgcode", None)
    if code:
        return "%s:%s" % (code, (getattr(e, "pgerror", "") or "").strip().splitlines()[0][:80])
    return type(e).__name__ + ":" + str(e).strip().splitlines()[0][:80] if str(e).strip() else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------
class Client(threading.Thread):
    """A connection routed to the REST primary; drops it when the REST primary changes."""

    def __init__(self, name, cluster, record, args, stop):
        super().__init__(name=name, daemon=True)
        self.cluster, self.record, self.args, self.stop = cluster, record, args, stop
        self.conn = None
        self.node = None
        self.checked = 0.0
        self.hard_deadline = time.monotonic() + args.client_limit

    def connect(self):
        primary = self.cluster.primary()
        self.checked = time.monotonic()
        if primary is None:
            return False
        try:
            set_deadline(self.args.op_timeout)
            conn = psycopg2.connect(self.cluster.dsn(primary, application_name=self.name))
        except (psycopg2.Error, ClientDeadline) as e:
            self.record.outcome("connect_failed", error_name(e))
            return False
        node = self.cluster.node_of_port.get(int(conn.info.port))
        if node != primary:
            # target_session_attrs found another writable node than the one Patroni calls leader
            # (an orphaned old primary): do not use it.
            self.record.outcome("connect_not_leader")
            close_quietly(conn)
            return False
        self.conn, self.node = conn, node
        self.record.event(self.name, node, "connected")
        self.on_connect()
        return True

    def on_connect(self):
        pass

    def drop(self):
        close_quietly(self.conn)
        self.conn, self.node = None, None

    def routed(self):
        """True with a connection to the current REST primary."""
        now = time.monotonic()
        if self.conn is not None and self.args.recheck > 0 and now - self.checked >= self.args.recheck:
            self.checked = now
            if self.cluster.primary() != self.node:
                self.record.outcome("dropped_not_leader")
                self.drop()
        if self.conn is None and not self.connect():
            self.stop.wait(0.1)
            return False
        return True

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.hard_deadline


class Producer(Client):
    def __init__(self, index, topic, *rest):
        super().__init__("producer-%d" % index, *rest)
        self.topic, self.index, self.seq = topic, index, 0
        self.rng = random.Random(index)

    def run(self):
        while self.running():
            if not self.routed():
                continue
            batch = self.rng.random() < 0.2
            n = self.rng.randint(5, 20) if batch else self.rng.randint(1, 5)
            ids = ["p%d-%d" % (self.index, self.seq + i) for i in range(n)]
            keys = ["k%d" % ((self.seq + i) % 16) for i in range(n)]
            self.seq += n
            node = self.node
            try:
                set_deadline(self.args.op_timeout)
                with self.conn.cursor() as cur:
                    if batch:
                        cur.execute("SELECT pgtopic.produce_batch(%s, %s::text[], %s::text[])", (self.topic, ids, keys))
                        items = [(i, None, None) for i in ids]
                    else:
                        cur.execute(
                            "SELECT m.ord, p.\"partition\", p.msg_offset"
                            "  FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS m(v, k, ord),"
                            "       LATERAL pgtopic.produce(%s::text, m.v, key => m.k) AS p",
                            (ids, keys, self.topic))
                        items = [(ids[ord_ - 1], partition, offset) for ord_, partition, offset in cur.fetchall()]
                del self.conn.notices[:]
                self.conn.commit()
                t = time.monotonic()
                warnings = [w for w in self.conn.notices if "WARNING" in w]
                if warnings:
                    self.record.outcome("warned_txn", "WARNING:" + warnings[0].strip()[:80])
                else:
                    self.record.ack(items, node, t)
            except (psycopg2.Error, ClientDeadline) as e:
                self.record.outcome("failed_txn", error_name(e))
                self.drop()
            if self.args.pause > 0:
                self.stop.wait(self.args.pause)
        self.drop()


class Consumer(Client):
    """A member of the group: consume, commit, COMMIT (one transaction per poll)."""

    def __init__(self, index, topic, group, *rest):
        super().__init__("consumer-%d" % index, *rest)
        self.topic, self.group = topic, group

    def run(self):
        while self.running():
            if not self.routed():
                continue
            node = self.node
            try:
                set_deadline(self.args.op_timeout)
                with self.conn.cursor() as cur:
                    cur.execute(
                        "SELECT \"partition\", msg_offset, convert_from(value, 'UTF8')"
                        "  FROM pgtopic.consume(%s, %s, %s, wait_ms => %s)",
                        (self.topic, self.group, 500, 200))
                    rows = cur.fetchall()
                    # Handed to the application: delivered, whatever happens to the commit.
                    self.record.delivered(rows, node, time.monotonic(), self.name)
                    cur.execute("SELECT pgtopic.commit(%s, %s)", (self.topic, self.group))
                del self.conn.notices[:]
                self.conn.commit()
                if any("WARNING" in w for w in self.conn.notices):
                    self.record.outcome("consumer_commit_warned")
                    self.record.event(self.name, node, "commit WARNING")
                else:
                    self.record.committed(rows, time.monotonic())
                    if rows:
                        self.record.event(self.name, node, "committed")
            except (psycopg2.Error, ClientDeadline) as e:
                self.record.outcome("consumer_failed", error_name(e))
                self.record.event(self.name, node, "failed " + error_name(e))
                self.drop()
        self.drop()


class Listener(Client):
    """LISTEN pgtopic on the leader; LISTENs again after every reconnect (not replicated)."""

    def __init__(self, topic, *rest):
        super().__init__("listener", *rest)
        self.topic = topic

    def on_connect(self):
        self.conn.autocommit = True
        set_deadline(self.args.op_timeout)
        with self.conn.cursor() as cur:
            cur.execute("LISTEN pgtopic")

    def run(self):
        while self.running():
            try:
                if not self.routed():
                    continue
                r, _, _ = select.select([self.conn.fileno()], [], [], 0.5)
                if r:
                    set_deadline(self.args.op_timeout)
                    self.conn.poll()
                    got = [n for n in self.conn.notifies if n.payload == self.topic]
                    del self.conn.notifies[:]
                    if got:
                        with self.record.lock:
                            self.record.notifications.append((time.monotonic(), self.node))
            except (psycopg2.Error, ClientDeadline, OSError, ValueError) as e:
                self.record.outcome("listener_lost", error_name(e) if isinstance(e, psycopg2.Error) else None)
                self.drop()
        self.drop()


class ReplicaReader(threading.Thread):
    """Reads the topic on the replicas (hot standby) all along: a node that served reads in
    recovery and is then promoted must still hand out offsets above everything it replayed."""

    def __init__(self, topic, cluster, record, args, stop):
        super().__init__(name="replica-reader", daemon=True)
        self.topic, self.cluster, self.record, self.args, self.stop = topic, cluster, record, args, stop
        self.hard_deadline = time.monotonic() + args.client_limit

    def run(self):
        conns = {}
        while not self.stop.is_set() and time.monotonic() < self.hard_deadline:
            leader = self.cluster.primary()
            for node in NODES:
                if node == leader or leader is None:
                    close_quietly(conns.pop(node, None))
                    continue
                try:
                    set_deadline(self.args.op_timeout)
                    if node not in conns:
                        conns[node] = psycopg2.connect(self.cluster.node_dsn(node, application_name="replica-reader"))
                        conns[node].autocommit = True
                    with conns[node].cursor() as cur:
                        cur.execute("SELECT \"partition\", high_watermark FROM pgtopic.partitions WHERE topic = %s",
                                    (self.topic,))
                        for partition, hw in cur.fetchall():
                            cur.execute("SELECT count(*) FROM pgtopic.fetch(%s, %s, greatest(%s - 50, 0), 50)",
                                        (self.topic, partition, hw))
                    self.record.outcome("replica_reads")
                except (psycopg2.Error, ClientDeadline) as e:
                    self.record.outcome("replica_read_failed", error_name(e))
                    close_quietly(conns.pop(node, None))
                    self.stop.wait(0.5)  # a restarting node: do not flood it with connections
            self.stop.wait(0.05)
        for c in conns.values():
            close_quietly(c)


# ---------------------------------------------------------------------------------------------
# One scenario
# ---------------------------------------------------------------------------------------------
def wait_until(limit, what, fn, interval=0.1):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %ss waiting for %s" % (limit, what))


def leader_query(cluster, sql, args=None, limit=20):
    """A query on the current leader, retried (bounded) across leader changes."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        leader = cluster.primary()
        if leader:
            try:
                return cluster.query(leader, sql, args)
            except (psycopg2.Error, ClientDeadline) as e:
                last = e
        time.sleep(0.2)
    raise RuntimeError("query on the leader failed: %s" % (last,))


def run_scenario(cluster, args, mode, scenario, run_id):
    topic = "ha.%s.%s.%s" % (run_id, mode, scenario)
    group = "ha-group"
    # Small segments: new segments are created (by pgtopic's segment workers) all through the
    # scenario, also around the fault.
    leader_query(cluster, "SELECT pgtopic.create_topic(%s, %s, segment_size => %s)",
                 (topic, args.partitions, args.segment_size))
    record = Record()
    stop_producers, stop_consumers = threading.Event(), threading.Event()
    producers = [Producer(i, topic, cluster, record, args, stop_producers) for i in range(args.producers)]
    consumers = [Consumer(i, topic, group, cluster, record, args, stop_consumers) for i in range(args.consumers)]
    listener = Listener(topic, cluster, record, args, stop_consumers)
    reader = ReplicaReader(topic, cluster, record, args, stop_consumers)
    threads = producers + consumers + [listener, reader]
    result = {"scenario": scenario, "mode": mode, "ok": True, "problems": []}
    for t in consumers + [listener, reader]:
        t.start()
    try:
        if args.join_first:
            # The group has a committed offset on every partition before the first message:
            # a group that starts from "earliest" while producer transactions are open can skip
            # their messages (a pgtopic bug unrelated to failover; --no-join-first shows it).
            wait_until(30, "the group to commit a position on every partition", lambda: leader_query(
                cluster, "SELECT count(*) = %s FROM pgtopic.catalog_offsets o"
                         "  JOIN pgtopic.catalog_groups g USING (group_id)"
                         "  JOIN pgtopic.catalog_topics t USING (topic_id)"
                         " WHERE t.topic = %s AND g.group_name = %s AND o.committed_offset IS NOT NULL",
                (args.partitions, topic, group))[0][0], interval=0.2)
        for t in producers:
            t.start()
        time.sleep(args.warmup)
        old = cluster.primary()
        if old is None:
            raise RuntimeError("no leader before the fault")
        if not record.acks:
            raise RuntimeError("no acknowledged write during the warm-up")

        # The fault.
        t0 = time.monotonic()
        if scenario == "postmaster-kill":
            pid = cluster.postmaster_pid(old)
            if pid is None:
                raise RuntimeError("no postmaster PID for %s" % old)
            os.kill(pid, signal.SIGKILL)
        elif scenario == "patroni-kill":
            pid = cluster.patroni_pid(old)
            if pid is None:
                raise RuntimeError("no Patroni PID for %s" % old)
            os.kill(pid, signal.SIGKILL)
        elif scenario == "switchover":
            status, body = cluster.rest(old, "/switchover", method="POST", body={"leader": old}, timeout=60)
            if status != 200:
                raise RuntimeError("switchover refused: %s %s" % (status, body))
        log("%s/%s: %s on %s" % (mode, scenario, scenario, old))

        new = wait_until(args.failover_limit, "a new leader",
                         lambda: (lambda p: p if p not in (None, old) else None)(cluster.primary()))
        t_leader = time.monotonic() - t0
        wait_until(args.failover_limit, "the first acknowledged write on %s" % new,
                   lambda: record.first_ack(t0, new))
        failover_s = record.first_ack(t0, new) - t0
        log("%s/%s: new leader %s after %.1fs, first acknowledged write after %.1fs"
            % (mode, scenario, new, t_leader, failover_s))

        if scenario == "patroni-kill":
            # A supervisor restarts Patroni (later than systemd would: an immediate restart finds
            # its own leader key still valid and no failover happens at all).
            cluster.start_patroni(old)

        def rejoined():
            rows = cluster.try_query(new, "SELECT 1 FROM pg_stat_replication WHERE application_name = %s"
                                          " AND state = 'streaming'", (old,), timeout=3)
            return bool(rows) and cluster.rest(old, "/replica")[0] == 200
        rejoin_s = None
        try:
            wait_until(args.rejoin_limit, "%s to rejoin" % old, rejoined, interval=0.2)
            rejoin_s = time.monotonic() - t0
        except RuntimeError as e:
            result["problems"].append(str(e))
        log("%s/%s: %s rejoined after %s" % (mode, scenario, old, "%.1fs" % rejoin_s if rejoin_s else "never"))
        try:
            cluster.wait_healthy(mode, args.rejoin_limit)
        except RuntimeError as e:
            result["problems"].append(str(e))

        time.sleep(args.after)
        stop_producers.set()
        for t in producers:
            t.join(args.op_timeout + 5)
        # Drain (bounded) until the group has committed everything in the log (lag 0): then
        # whatever acknowledged message it has not received is not coming (lost or skipped).
        drain_deadline = time.monotonic() + args.drain_limit
        lag = None
        while time.monotonic() < drain_deadline:
            rows = cluster.try_query(cluster.primary() or new,
                                     "SELECT coalesce(sum(lag), -1) FROM pgtopic.consumer_lag"
                                     " WHERE topic = %s AND group_name = %s", (topic, group), timeout=3)
            lag = rows[0][0] if rows else None
            if lag == 0:
                break
            time.sleep(0.25)
        # The group re-formed on the new leader: every member holds partitions, all are owned.
        members = leader_query(cluster, "SELECT count(*), coalesce(sum(cardinality(partitions)), 0),"
                                        " count(*) FILTER (WHERE cardinality(partitions) = 0)"
                                        "  FROM pgtopic.group_members WHERE topic = %s AND group_name = %s",
                               (topic, group))[0]
        stop_consumers.set()
        for t in consumers + [listener, reader]:
            t.join(args.op_timeout + 5)
        result.update(verify(cluster, record, topic, t0, new, old, lag))
        result["members"] = "%d/%d" % (members[0], members[1])
        if args.consumers <= args.partitions and (members[0] != args.consumers or members[1] != args.partitions
                                                  or members[2] != 0):
            result["problems"].append("group after the drain: %d members owning %d partitions (%d with none)"
                                      % tuple(members))
        result.update(failover_s=failover_s, rejoin_s=rejoin_s, leader_s=t_leader, old=old, new=new)
    except Exception as e:
        result["ok"] = False
        result["problems"].append("%s: %s" % (type(e).__name__, e))
    finally:
        stop_producers.set()
        stop_consumers.set()
        for t in threads:
            if t.is_alive():
                t.join(args.op_timeout + 5)
    result["outcomes"] = dict(record.outcomes)
    result["errors"] = dict(record.errors.most_common(6))
    return result


def verify(cluster, record, topic, t0, new, old, lag):
    """Compares what the clients saw with the new leader's log."""
    tid = leader_query(cluster, "SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = %s", (topic,))[0][0]
    rows = leader_query(cluster, "SELECT \"partition\", msg_offset, convert_from(value, 'UTF8')"
                                 "  FROM pgtopic_data.topic_%s" % int(tid), limit=30)
    log_pos = {}
    log_dups = 0
    for partition, offset, msg_id in rows:
        if msg_id in log_pos:
            log_dups += 1
        log_pos[msg_id] = (partition, offset)

    with record.lock:
        acked = dict(record.acked)
        deliveries = {k: list(v) for k, v in record.deliveries.items()}
        delivered_at = {k: set(v) for k, v in record.delivered_at.items()}
        commits = list(record.commits)
        notifications = list(record.notifications)

    lost = moved = 0
    position = {}          # acked id -> (partition, offset): as acknowledged, else as logged/delivered
    for msg_id, (partition, offset, node, t) in acked.items():
        logged = log_pos.get(msg_id)
        if logged is None:
            lost += 1
        elif partition is not None and logged != (partition, offset):
            moved += 1
        if partition is not None:
            position[msg_id] = (partition, offset)
        elif logged is not None:
            position[msg_id] = logged
        elif msg_id in deliveries:
            position[msg_id] = deliveries[msg_id][0][:2]

    # No offset of an acknowledged message reused: by another acknowledged message, or by any
    # other message delivered to the group at that offset.
    by_pos = collections.defaultdict(set)
    for msg_id, pos in position.items():
        by_pos[pos].add(msg_id)
    reused = sum(1 for ids in by_pos.values() if len(ids) > 1)
    reused += sum(1 for pos, ids in delivered_at.items() if len(ids) > 1)

    # Offsets continue above every acknowledged message: per partition, what was acknowledged by
    # the new leader after the fault lies above every (surviving) message acknowledged before it.
    below = 0
    before_max = collections.defaultdict(lambda: -1)
    for msg_id, (partition, offset, node, t) in acked.items():
        if t < t0 and msg_id in log_pos:
            p, o = log_pos[msg_id]
            before_max[p] = max(before_max[p], o)
    for msg_id, (partition, offset, node, t) in acked.items():
        if t > t0 and node == new and partition is not None and offset <= before_max[partition]:
            below += 1

    undelivered = sum(1 for i in acked if i not in deliveries)
    duplicated = sum(1 for i in acked if len(deliveries.get(i, ())) > 1)
    redelivered = sum(len(v) - 1 for v in deliveries.values() if len(v) > 1)

    # Committed group offsets survive: after the fault nothing below an offset the group had
    # committed (acknowledged) before the fault is delivered again.
    floor = collections.defaultdict(lambda: -1)
    for t, partition, nxt in commits:
        if t < t0:
            floor[partition] = max(floor[partition], nxt)
    rewound = 0
    for msg_id, ds in deliveries.items():
        for partition, offset, t, node in ds:
            if t > t0 and offset < floor[partition]:
                rewound += 1

    notified_after = sum(1 for t, n in notifications if t > t0 and n == new)

    # pgtopic's own view of the partitions on the new leader, with no producer left: the high
    # watermark above every stored message and nothing in flight (LSO = high watermark); and a
    # maintenance pass (segments ahead, retention) runs without error.
    top = collections.defaultdict(lambda: -1)
    for partition, offset, _ in rows:
        top[partition] = max(top[partition], offset)
    catalog = []
    for partition, hw, lso in leader_query(cluster, "SELECT \"partition\", high_watermark, last_stable_offset"
                                                    "  FROM pgtopic.partitions WHERE topic = %s", (topic,)):
        if hw <= top[partition] or lso != hw:
            catalog.append("partition %d: high watermark %d, LSO %d, top stored offset %d" % (partition, hw, lso, top[partition]))
    try:
        leader_query(cluster, "SELECT count(*) FROM pgtopic.run_maintenance()", limit=10)
    except RuntimeError as e:
        catalog.append("run_maintenance: %s" % e)
    diagnosis = []
    missing = sorted((i for i in acked if i not in deliveries), key=lambda i: acked[i][3])[:8]
    if missing:
        with record.lock:
            trace = sorted(record.trace)
        for k, msg_id in enumerate(missing):
            partition, offset, node, t = acked[msg_id]
            p, o = log_pos.get(msg_id, (partition, offset))
            diagnosis.append("undelivered %s acked by %s at %+.3fs, acknowledged at %s, %s"
                             % (msg_id, node, t - t0, (partition, offset),
                                "stored at %s" % (log_pos[msg_id],) if msg_id in log_pos else "not in the log (lost)"))
            near = sorted((d[2], d[1], i, d[3]) for (dp, do_), ids in delivered_at.items() if dp == p
                          and o is not None and abs(do_ - o) <= 3 for i in ids for d in deliveries[i] if d[1] == do_)
            for dt, doff, did, dnode in near:
                diagnosis.append("    delivered p%d:%d %s from %s at %+.3fs" % (p, doff, did, dnode, dt - t0))
            for tt, who, wnode, what in trace:
                if k == 0 and abs(tt - t) < 3 and (who or "").startswith("consumer"):
                    diagnosis.append("    %+.3fs %s@%s %s" % (tt - t0, who, wnode, what))
    return {"diagnosis": diagnosis, "acked": len(acked), "lost": lost, "moved": moved, "duplicated": duplicated, "redelivered": redelivered,
            "undelivered": undelivered, "reused": reused, "below": below, "rewound": rewound, "log_dups": log_dups,
            "logged": len(rows), "lag": lag, "notified_after": notified_after, "catalog": catalog}


def judge(result):
    """Adds the failures: everything in synchronous modes, setup problems only in async."""
    problems = result["problems"]
    sync = result["mode"] in SYNC_MODES
    if "acked" not in result:
        result["ok"] = False
        return
    if result["acked"] == 0:
        problems.append("nothing acknowledged")
    if result.get("rejoin_s") is None:
        problems.append("old leader did not rejoin")
    if result["log_dups"]:
        problems.append("%d message ids twice in the log" % result["log_dups"])
    problems.extend(result["catalog"])
    if sync:
        for key, what in (("lost", "acknowledged messages lost"), ("moved", "acknowledged messages at another offset"),
                          ("undelivered", "acknowledged messages never delivered"),
                          ("reused", "offsets reused"), ("below", "offsets not above the acknowledged ones"),
                          ("rewound", "deliveries below a committed group offset")):
            if result[key]:
                problems.append("%d %s" % (result[key], what))
        if result["lag"] != 0:
            problems.append("group lag %s after the drain" % result["lag"])
    if problems:
        result["ok"] = False


def fmt(x):
    return "%.1f" % x if isinstance(x, float) else ("-" if x is None else str(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="the cluster's scratch directory (ha/cluster --dir)")
    ap.add_argument("--cluster", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster"))
    ap.add_argument("--port-base", type=int, default=55500)
    ap.add_argument("--modes", default="sync", help="comma-separated: sync, strict, async")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--segment-size", type=int, default=500, help="offsets per segment of the test topics")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of traffic before the fault")
    ap.add_argument("--after", type=float, default=2.0, help="seconds of traffic after the rejoin")
    ap.add_argument("--pause", type=float, default=0.0, help="producer pause between transactions (s)")
    ap.add_argument("--join-first", action=argparse.BooleanOptionalAction, default=True,
                    help="the consumer group commits a position on every partition before producers start")
    ap.add_argument("--recheck", type=float, default=0.5,
                    help="clients re-ask GET /primary this often and leave a node that lost it (0: only after errors)")
    ap.add_argument("--op-timeout", type=float, default=5.0, help="client-side deadline per statement (s)")
    ap.add_argument("--failover-limit", type=float, default=60.0)
    ap.add_argument("--rejoin-limit", type=float, default=60.0)
    ap.add_argument("--drain-limit", type=float, default=30.0)
    ap.add_argument("--client-limit", type=float, default=300.0, help="hard limit of any client thread (s)")
    args = ap.parse_args()

    modes = [m for m in args.modes.split(",") if m]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for m in modes:
        if m not in ("sync", "strict", "async"):
            ap.error("unknown mode %s" % m)
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %s" % s)

    cluster = Cluster(args.dir, args.port_base, args.cluster)
    run_id = time.strftime("%H%M%S")
    failed = False
    started = time.monotonic()
    results = []
    for mode in modes:
        try:
            cluster.set_mode(mode)
            leader = cluster.wait_healthy(mode, 60)
            log("mode %s: healthy, leader %s" % (mode, leader))
        except RuntimeError as e:
            print("failover: mode=%s setup failed: %s" % (mode, e), flush=True)
            failed = True
            continue
        for scenario in scenarios:
            t = time.monotonic()
            r = run_scenario(cluster, args, mode, scenario, run_id)
            judge(r)
            results.append(r)
            print("failover: scenario=%s mode=%s acked=%s lost=%s duplicated=%s failover_s=%s rejoin_s=%s"
                  % (scenario, mode, r.get("acked", "-"), r.get("lost", "-"), r.get("duplicated", "-"),
                     fmt(r.get("failover_s")), fmt(r.get("rejoin_s"))), flush=True)
            print("failover-check: scenario=%s mode=%s result=%s old=%s new=%s leader_s=%s undelivered=%s "
                  "offsets_reused=%s offsets_below=%s moved=%s rewound=%s redelivered=%s lag=%s logged=%s "
                  "notified_after=%s members=%s took_s=%.0f%s"
                  % (scenario, mode, "ok" if r["ok"] else "FAIL", r.get("old", "-"), r.get("new", "-"),
                     fmt(r.get("leader_s")), r.get("undelivered", "-"), r.get("reused", "-"), r.get("below", "-"),
                     r.get("moved", "-"), r.get("rewound", "-"), r.get("redelivered", "-"), r.get("lag", "-"),
                     r.get("logged", "-"), r.get("notified_after", "-"), r.get("members", "-"), time.monotonic() - t,
                     "" if r["ok"] else " problems=" + json.dumps(r["problems"])), flush=True)
            for line in r.get("diagnosis", []):
                print("failover-diagnosis: " + line, flush=True)
            print("failover-clients: scenario=%s mode=%s outcomes=%s errors=%s"
                  % (scenario, mode, json.dumps(r["outcomes"], sort_keys=True), json.dumps(r["errors"])), flush=True)
            if not r["ok"] and mode in SYNC_MODES:
                failed = True
            if not r["ok"] and mode == "async" and ("acked" not in r or r.get("rejoin_s") is None):
                failed = True   # the control could not even run
            if "acked" not in r:
                # The cluster may be in an unknown state: let it settle before the next scenario.
                try:
                    cluster.wait_healthy(mode, 60)
                except RuntimeError as e:
                    log("cluster not healthy: %s" % e)
    log("failover test finished in %.0fs: %s" % (time.monotonic() - started, "FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
