#!/usr/bin/python3
"""Property test: pgtopic's SQL functions called with random arguments give clear errors, never XX000.

A seeded generator makes N cases. Each case is one transaction of one to three calls (several calls:
each in a savepoint), ended by COMMIT or ROLLBACK, from a superuser session or a non-superuser one.
Calls cover produce (3 overloads), produce_batch (3 overloads), fetch, consume / consume_text /
consume_json, commit, leave, seek, seek_to_beginning / _end / _time, offset_for_time,
partition_offsets, key_partition, murmur2, create_topic / alter_topic / drop_topic, grant_topic /
revoke_topic / has_topic_privilege, run_maintenance and the views,
with NULLs, huge and negative numbers, unicode (and invalid-looking text as SQL expressions),
long strings, empty / multi-dimensional / offset-bound / mismatched / large arrays, in several call
shapes (FROM, target list, repeated, LIMIT, named arguments, untyped literals).

Every error's SQLSTATE is recorded. The test fails on an internal error (SQLSTATE class XX), an
error that only pgtopic's own statements can raise (class 23 integrity violations, 42P01/42P07
from its storage DDL; a known one can be let through with --allow-sqlstate while it is being
fixed), a lost connection (a crash), a server log with a crash, TRAP or PANIC, or a broken
invariant of a successful call (partitions in range, offsets increasing and within the asked
range, row counts within max_messages, log start <= last stable offset <= high watermark,
produce by key == key_partition). It prints

    property: cases=<n> ok=<n> errors=<n> by_sqlstate=<state>:<n>,... internal=<n> crashes=<n>

and for every failure the seed, the case number and the exact statement.

Without --dsn it starts its own throwaway server (as the postgres user when run as root):
    property_test.py [--cases 3000] [--seed 1] [--dir /tmp/pgtopic-property] [--port 55441]
                     [--bindir /usr/lib/postgresql/15/bin] [--keep] [--verbose]
With --dsn it uses an existing database where pgtopic is installed and preloaded, and creates the
role pgtopic_property there.
"""

import argparse
import collections
import json
import os
import random
import sys
import time

import psycopg2
import psycopg2.extensions
import psycopg2.extras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from throwaway_server import ThrowawayServer, connect_with_extension, crash_lines  # noqa: E402

# Dates, times and intervals stay text: infinity and year 294276 do not fit Python's datetime.
for _oid, _name in ((1082, 'DATE'), (1114, 'TIMESTAMP'), (1184, 'TIMESTAMPTZ'), (1186, 'INTERVAL'),
                    (1182, 'DATEARRAY'), (1115, 'TSARRAY'), (1185, 'TSTZARRAY'), (1187, 'INTERVALARRAY')):
    psycopg2.extensions.register_type(psycopg2.extensions.new_type((_oid,), 'PGTOPIC_' + _name, psycopg2.STRING))

def _json_or_text(value):
    # jsonb nested deeper than Python's recursion limit (PostgreSQL accepts it) stays text
    try:
        return json.loads(value) if value is not None else None
    except RecursionError:
        return value


psycopg2.extras.register_default_json(loads=_json_or_text, globally=True)
psycopg2.extras.register_default_jsonb(loads=_json_or_text, globally=True)

INT4_MIN, INT4_MAX = -2**31, 2**31 - 1
INT8_MIN, INT8_MAX = -2**63, 2**63 - 1
MAX_PARTITIONS = 16          # pgtopic.max_partitions on the test server: keeps create_topic fast
ROLE = 'pgtopic_property'


class Raw:
    """An argument given as an SQL expression (for values a client library cannot send)."""

    def __init__(self, sql):
        self.sql = sql


class Arg:
    """A value for one parameter: sent as a literal with a cast (cast=None: an untyped literal)."""

    def __init__(self, value, cast):
        self.value = value
        self.cast = cast


# ---------------------------------------------------------------------------------------------
# value generators
# ---------------------------------------------------------------------------------------------

UNICODE = ['ünïcødé', '日本語', '😀🎉', '\u202eevil', 'a\u0301', '\ufeffbom', '\uffff', '\U0010ffff', '\ue000',
           'Ω≈ç√', 'ﷺ', '\u200d\u200d', 'tab\there', 'new\nline', '\x01ctl', '\x7f', 'quote\'s', 'back\\slash',
           '%s%n%x%d', '"; DROP TABLE x; --', 'NULL', ' ', '']
INVALID_TEXT_SQL = [
    r"E'\uD800'",                                   # lone surrogate: rejected at input
    "convert_from('\\xc328'::bytea, 'UTF8')",        # invalid UTF-8
    "chr(0)",                                       # NUL in text
    "repeat('ab', 600000)",                         # 1.2 MB
    "repeat('é', 100000)",
    "convert_from('\\xefbfbf'::bytea, 'UTF8')",      # U+FFFF
]


class Gen:
    def __init__(self, rng, world):
        self.r = rng
        self.w = world

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    # ---- scalars ----
    def int4(self, valid=None):
        r = self.r.random()
        if r < 0.05:
            return None
        if valid is not None and r < 0.8:
            return valid()
        return self.pick([0, 1, -1, 2, 3, 7, 8, 15, 16, 17, 100, 1000, 65535, INT4_MAX, INT4_MIN, INT4_MAX - 1,
                          self.r.randint(INT4_MIN, INT4_MAX)])

    def int8(self, valid=None):
        r = self.r.random()
        if r < 0.05:
            return None
        if valid is not None and r < 0.8:
            return valid()
        return self.pick([0, 1, -1, 5, 99, 1000, 2**31, 2**31 - 1, 2**32, 2**53 + 1, INT8_MAX, INT8_MIN,
                          INT8_MAX - 1, self.r.randint(INT8_MIN, INT8_MAX)])

    def text(self, max_len=300):
        r = self.r.random()
        if r < 0.3:
            return self.pick(UNICODE)
        if r < 0.5:
            return ''.join(self.pick('abcXYZ019._- ') for _ in range(self.r.randint(0, 20)))
        if r < 0.6:
            return ''.join(chr(self.r.choice([self.r.randint(0x20, 0x7e), self.r.randint(0xa0, 0xd7ff),
                                              self.r.randint(0xe000, 0xfffd), self.r.randint(0x10000, 0x10ffff)]))
                           for _ in range(self.r.randint(1, 40)))
        if r < 0.65:
            return 'x' * self.pick([249, 250, 1000, 100000, max_len])
        return 'k%d' % self.r.randint(0, 50)

    def text_arg(self, valid=None, allow_raw=True):
        """A text argument: NULL, a valid value, random text or an invalid-looking SQL expression."""
        r = self.r.random()
        if r < 0.05:
            return Arg(None, 'text')
        if valid is not None and r < 0.83:
            return Arg(valid(), 'text')
        if allow_raw and r < 0.86:
            return Raw(self.pick(INVALID_TEXT_SQL))
        return Arg(self.text(), 'text')

    def topic_arg(self):
        def valid():
            if self.w.topics and self.chance(0.9):
                return self.pick(sorted(self.w.topics))
            return self.pick(['t%d' % self.r.randint(0, 30), 'A.b_c-1', '.', '..', 'x' * 249, 'x' * 250, 'Orders'])
        return self.text_arg(valid)

    def group_arg(self):
        def valid():
            if self.w.groups and self.chance(0.5):
                return self.pick(sorted(self.w.groups))
            if self.chance(0.6):
                return 'g%d' % self.r.randint(0, 3)
            return self.pick(['billing', 'ünïcødé', 'é' * 124, 'é' * 125, 'g' * 249,
                              'g' * 250, 'tab\tname', '😀', ' ', ''])
        return self.text_arg(valid)

    def partition_arg(self, topic_arg):
        n = self.w.partitions_of(topic_arg)
        return Arg(self.int4(lambda: self.r.randint(0, max(n, 1)) if n else self.r.randint(0, 3)), 'integer')

    def offset_arg(self):
        return Arg(self.int8(lambda: self.pick([0, 0, 1, 5, 10, 50, 100, 199, 1000, 10**6])), 'bigint')

    def max_messages_arg(self):
        return Arg(self.int4(lambda: self.pick([0, 1, 2, 10, 100, 100, 500])), 'integer')

    def wait_ms_arg(self):
        r = self.r.random()
        if r < 0.05:
            return Arg(None, 'integer')
        if r < 0.9:
            return Arg(0, 'integer')
        if r < 0.98:
            return Arg(self.r.randint(1, 30), 'integer')
        if r < 0.995:
            return Arg(self.pick([-1, INT4_MIN]), 'integer')
        return Arg(INT4_MAX, 'integer')   # ends by statement_timeout (57014)

    def bytes_(self):
        r = self.r.random()
        if r < 0.1:
            return b''
        if r < 0.15:
            return b'\x00' * self.r.randint(1, 10)
        if r < 0.2:
            return bytes([0xc3, 0x28, 0xff, 0xfe])
        if r < 0.23:
            return os.urandom(self.pick([100000, 1024 * 1024 - 10, 1024 * 1024 + 1]))
        return bytes(self.r.randint(0, 255) for _ in range(self.r.randint(0, 64)))

    def json_doc(self, depth=0):
        r = self.r.random()
        if depth > 3 or r < 0.3:
            return self.pick([None, True, False, 0, -1, 1.5, 10**30, 'str', self.pick(UNICODE), ''])
        if r < 0.65:
            return {self.text(20): self.json_doc(depth + 1) for _ in range(self.r.randint(0, 4))}
        return [self.json_doc(depth + 1) for _ in range(self.r.randint(0, 4))]

    def jsonb_arg(self, object_only=False):
        r = self.r.random()
        if r < 0.1:
            return Arg(None, 'jsonb')
        if r < 0.17:
            return Raw(self.pick([
                "'\"\\u0000\"'::jsonb",                                    # unsupported escape
                "'1e1000'::jsonb", "'[' || repeat('[', 5000) || repeat(']', 5001)",  # deep
                "jsonb_build_object('big', repeat('j', 1100000))",          # > max_message_bytes
                "'{\"a\": 1, \"a\": 2}'::jsonb", "'not json'::jsonb",
                "('{' || repeat('\"k\": 1, ', 3) || '\"z\": 0}')::jsonb",
            ]))
        doc = self.json_doc()
        if object_only and self.chance(0.7) and not isinstance(doc, dict):
            doc = {'h': doc}
        return Arg(psycopg2.extras.Json(doc), 'jsonb')

    def value_arg(self, kind):
        if kind == 'bytea':
            r = self.r.random()
            if r < 0.1:
                return Arg(None, 'bytea')
            if r < 0.14:
                return Raw(self.pick(["decode(repeat('ab', 600000), 'hex')", "'\\x'::bytea", "'\\xzz'::bytea"]))
            return Arg(psycopg2.Binary(self.bytes_()), 'bytea')
        if kind == 'text':
            return self.text_arg()
        return self.jsonb_arg()

    def element(self, kind):
        if self.chance(0.08):
            return None
        if kind == 'bytea':
            return psycopg2.Binary(self.bytes_() if self.chance(0.9) else b'v')
        if kind in ('text', 'key'):
            return self.text(200)
        return psycopg2.extras.Json(self.json_doc() if kind == 'jsonb' else {'h': self.text(10)})

    def array_arg(self, kind, n, cast):
        """An array of about n elements of kind, or something odd."""
        r = self.r.random()
        if r < 0.07:
            return Arg(None, cast)
        if r < 0.12:
            return Arg([], cast)
        if r < 0.17:   # multi-dimensional
            return Arg([[self.element(kind), self.element(kind)], [self.element(kind), self.element(kind)]], cast)
        if r < 0.2:    # ragged: rejected by the parser
            return Arg([[self.element(kind)], [self.element(kind), self.element(kind)]], cast)
        if r < 0.24:   # lower bound other than 1, and a literal with NULLs
            return Raw({'bytea': "'[0:1]={\"\\\\x01\",NULL}'::bytea[]",
                        'text': "'[5:7]={a,NULL,c}'::text[]", 'key': "'[5:7]={a,NULL,c}'::text[]",
                        'jsonb': "'[5:7]={\"{}\",NULL,1}'::jsonb[]",
                        'headers': "'[-1:1]={\"{}\",NULL,\"{\\\"h\\\": 1}\"}'::jsonb[]"}[kind])
        if r < 0.27:   # one big array, built by the server
            m = self.pick([1000, 5000, 20000])
            expr = {'bytea': "convert_to('m' || i, 'UTF8')", 'text': "'m' || i",
                    'jsonb': "jsonb_build_object('i', i)", 'headers': "jsonb_build_object('h', i)",
                    'key': "'k' || (i % 97)"}[kind]
            return Raw("(SELECT array_agg(%s) FROM generate_series(1, %d) AS i)::%s" % (expr, m, cast))
        return Arg([self.element(kind) for _ in range(n)], cast)


# ---------------------------------------------------------------------------------------------
# the world the calls act on
# ---------------------------------------------------------------------------------------------

class World:
    def __init__(self):
        self.topics = {}   # name -> partitions
        self.groups = set()

    def refresh(self, cur):
        cur.execute("SELECT topic, partitions FROM pgtopic.catalog_topics")
        self.topics = dict(cur.fetchall())
        cur.execute("SELECT group_name FROM pgtopic.catalog_groups")
        self.groups = {g for (g,) in cur.fetchall()}

    def partitions_of(self, topic_arg):
        if isinstance(topic_arg, Arg) and topic_arg.value in self.topics:
            return self.topics[topic_arg.value]
        return None


# ---------------------------------------------------------------------------------------------
# calls
# ---------------------------------------------------------------------------------------------

class Call:
    """One function call: name, (param name, Arg/Raw) pairs, whether it returns a set, a checker."""

    def __init__(self, func, args, srf, check=None, admin=False, omit_from=None):
        self.func = func
        self.args = args
        self.srf = srf
        self.check = check
        self.admin = admin
        self.omit_from = omit_from   # trailing parameters with defaults may be left out
        self.present = dict(args)    # the arguments render() really passed

    def arg(self, name, default=None):
        """The value passed for a parameter (its default when left out), None for NULL or an SQL expression."""
        a = self.present.get(name)
        if a is None:
            return default
        return a.value if isinstance(a, Arg) else None


def render(call, g):
    """SQL text with %s placeholders and the parameter list for one call."""
    args = list(call.args)
    if call.omit_from is not None and g.chance(0.3):
        keep = g.r.randint(call.omit_from, len(args))
        args = args[:keep]
    call.present = dict(args)
    named = g.chance(0.2)
    untyped = g.chance(0.03)
    parts, params = [], []
    for name, a in args:
        if isinstance(a, Raw):
            frag = a.sql.replace('%', '%%')
        else:
            params.append(a.value)
            frag = '%s' if (untyped or a.cast is None) else '(%%s)::%s' % a.cast
        parts.append('%s => %s' % (name, frag) if named else frag)
    expr = 'pgtopic.%s(%s)' % (call.func, ', '.join(parts))
    if not call.srf:
        return 'SELECT %s' % expr, params
    shape = g.r.random()
    if shape < 0.55:
        return 'SELECT * FROM %s' % expr, params
    if shape < 0.7:
        return 'SELECT count(*) FROM %s' % expr, params
    if shape < 0.8:
        return 'SELECT %s' % expr, params                                 # target list (ProjectSet)
    if shape < 0.88:
        return 'SELECT * FROM %s LIMIT 1' % expr, params
    if shape < 0.95:
        return 'SELECT %s FROM generate_series(1, 3)' % expr, params * 1   # three calls
    return 'WITH c AS MATERIALIZED (SELECT * FROM %s) SELECT count(*) FROM c' % expr, params


def make_call(g, w):
    kind = g.r.choices(
        ['produce', 'produce_batch', 'fetch', 'consume', 'consume_text', 'consume_json', 'commit', 'leave', 'seek',
         'seek_to', 'partition_offsets', 'key_partition', 'murmur2', 'create_topic', 'alter_topic', 'drop_topic',
         'views', 'maintenance', 'unlock_all', 'reset_setting', 'grant', 'offset_for_time'],
        [14, 12, 10, 8, 3, 3, 5, 3, 5, 4, 4, 4, 3, 5, 3, 2, 3, 1, 1, 1, 4, 2])[0]

    if kind == 'produce':
        vk = g.pick(['bytea', 'text', 'jsonb'])
        topic = g.topic_arg()
        key = g.text_arg(lambda: 'k%d' % g.r.randint(0, 20))
        part = g.partition_arg(topic) if g.chance(0.4) else Arg(None, 'integer')
        args = [('topic', topic), ('value', g.value_arg(vk)), ('key', key),
                ('headers', g.jsonb_arg(object_only=True) if g.chance(0.4) else Arg(None, 'jsonb')),
                ('"partition"', part)]
        return Call('produce', args, True, check_produce(w), omit_from=2)

    if kind == 'produce_batch':
        vk = g.pick(['bytea', 'text', 'jsonb'])
        n = g.pick([0, 1, 2, 3, 5, 10, 50])
        n_keys = n if g.chance(0.75) else g.pick([0, max(n - 1, 0), n + 1])
        n_headers = n if g.chance(0.8) else g.pick([0, n + 1])
        args = [('topic', g.topic_arg()), ('messages', g.array_arg(vk, n, vk + '[]')),
                ('keys', g.array_arg('key', n_keys, 'text[]') if g.chance(0.6) else Arg(None, 'text[]')),
                ('headers', g.array_arg('headers', n_headers, 'jsonb[]') if g.chance(0.3) else Arg(None, 'jsonb[]'))]
        return Call('produce_batch', args, False, check_batch, omit_from=2)

    if kind == 'fetch':
        topic = g.topic_arg()
        frm, mx = g.offset_arg(), g.max_messages_arg()
        part = g.partition_arg(topic)
        args = [('topic', topic), ('"partition"', part), ('from_offset', frm), ('max_messages', mx)]
        return Call('fetch', args, True, check_fetch, omit_from=3)

    if kind in ('consume', 'consume_text', 'consume_json'):
        mx = g.max_messages_arg()
        args = [('topic', g.topic_arg()), ('group_name', g.group_arg()), ('max_messages', mx),
                ('wait_ms', g.wait_ms_arg())]
        return Call(kind, args, True, check_consume, omit_from=2)

    if kind in ('commit', 'leave'):
        return Call(kind, [('topic', g.topic_arg()), ('group_name', g.group_arg())], False)

    if kind == 'seek':
        topic = g.topic_arg()
        return Call('seek', [('topic', topic), ('group_name', g.group_arg()), ('"partition"', g.partition_arg(topic)),
                             ('to_offset', g.offset_arg()), ('member_id', Arg(None, 'text')),
                             ('create_group', g.pick([Arg(True, 'boolean'), Arg(False, 'boolean'), Arg(None, 'boolean')]))],
                    False, omit_from=4)

    if kind == 'seek_to':
        topic = g.topic_arg()
        f = g.pick(['seek_to_beginning', 'seek_to_end', 'seek_to_time'])
        args = [('topic', topic), ('group_name', g.group_arg())]
        if f == 'seek_to_time':
            args.append(('ts', g.pick([Arg(None, 'timestamptz'), Raw('now()'), Raw("now() - interval '1 hour'"),
                                       Raw("'infinity'::timestamptz"), Raw("'-infinity'::timestamptz"),
                                       Raw("'294276-12-31'::timestamptz"), Raw("'4713-01-01 BC'::timestamptz")])))
        args.append(('"partition"', g.partition_arg(topic) if g.chance(0.5) else Arg(None, 'integer')))
        args.append(('create_group', g.pick([Arg(True, 'boolean'), Arg(False, 'boolean'), Arg(None, 'boolean')])))
        return Call(f, args, False, omit_from=len(args) - 2)

    if kind == 'partition_offsets':
        return Call('partition_offsets', [('topic', g.topic_arg())], True, check_offsets)

    if kind == 'key_partition':
        n = Arg(g.int4(lambda: g.r.randint(1, 20)), 'integer')
        return Call('key_partition', [('key', g.text_arg(lambda: g.text(50))), ('partitions', n)], False,
                    check_key_partition)

    if kind == 'murmur2':
        return Call('murmur2', [('data', g.value_arg('bytea'))], False)

    if kind == 'create_topic':
        if len(w.topics) > 14:
            return make_drop(g, w)
        name = Arg('t%d' % g.r.randint(0, 30), 'text') if g.chance(0.8) else g.topic_arg()
        args = [('topic', name),
                ('partitions', Arg(g.int4(lambda: g.pick([1, 1, 2, 3, 4, 8])), 'integer')),
                ('retention', g.pick([Arg(None, 'interval')] * 4 + [Raw("interval '1 hour'"), Raw("interval '-1 day'"),
                                                                   Raw("interval '0'"), Raw("interval '1 microsecond'"),
                                                                   Raw("interval '178000000 years'")])),
                ('retention_bytes', Arg(g.int8(lambda: g.pick([None, None, 1, 1000, 10**9])), 'bigint')),
                ('segment_size', Arg(g.int8(lambda: g.pick([None, 1, 2, 3, 10, 100, 1000])), 'bigint')),
                ('max_message_bytes', max_message_bytes_arg(g))]
        return Call('create_topic', args, False, admin=True, omit_from=1)

    if kind == 'alter_topic':
        topic = g.topic_arg()
        n = w.partitions_of(topic) or 1
        args = [('topic', topic),
                ('partitions', Arg(g.int4(lambda: min(n + g.r.randint(-1, 3), MAX_PARTITIONS + 1)), 'integer')),
                ('retention', g.pick([Arg(None, 'interval'), Raw("interval '1 hour'"), Raw("interval '-1 second'")])),
                ('retention_bytes', Arg(g.int8(lambda: g.pick([None, 1, -1, 10**6])), 'bigint')),
                ('max_message_bytes', max_message_bytes_arg(g))]
        return Call('alter_topic', args, False, admin=True, omit_from=1)

    if kind == 'drop_topic':
        return make_drop(g, w)

    if kind == 'views':
        view = g.pick(['topics', 'partitions', 'consumer_lag', 'group_members', 'lso_holders'])
        return Call(None, [('view', view)], True)

    if kind == 'maintenance':
        return Call('run_maintenance', [], True, admin=True)

    if kind == 'grant':
        f = g.pick(['grant_topic', 'revoke_topic', 'has_topic_privilege'])
        priv = g.text_arg(lambda: g.pick(['produce', 'consume', 'admin', 'PRODUCE', 'read', 'all']))
        if f == 'has_topic_privilege':
            return Call(f, [('topic', g.topic_arg()), ('privilege', priv)], False)
        role = g.text_arg(lambda: g.pick([ROLE, ROLE, 'postgres', 'pgtopic_consumer', 'public', 'PUBLIC',
                                          'no_such_role', '', 'pg_read_all_data']))
        return Call(f, [('topic', g.topic_arg()), ('role', role), ('privilege', priv)], False, admin=True)

    if kind == 'offset_for_time':
        topic = g.topic_arg()
        ts = g.pick([Arg(None, 'timestamptz'), Raw('now()'), Raw("now() - interval '1 minute'"),
                     Raw("'infinity'::timestamptz"), Raw("'-infinity'::timestamptz"), Raw("'1970-01-01'::timestamptz")])
        return Call('offset_for_time', [('topic', topic), ('"partition"', g.partition_arg(topic)), ('ts', ts)], False)

    if kind == 'unlock_all':
        return Call(None, [('sql', 'SELECT pg_advisory_unlock_all()')], False)

    return Call(None, [('sql', g.pick(["SET pgtopic.auto_offset_reset = 'latest'", "SET pgtopic.auto_offset_reset = 'earliest'",
                                       "SET pgtopic.max_message_bytes = '100kB'", "RESET pgtopic.max_message_bytes"]))],
                False)


def max_message_bytes_arg(g):
    return Arg(g.int4(lambda: g.pick([None, None, None, 1, 100, 1024, 1024 * 1024, 100 * 1024 * 1024])), 'integer')


def make_drop(g, w):
    topic = g.topic_arg()
    if isinstance(topic, Arg) and topic.value == 'keep':
        topic = Arg('nope', 'text')
    return Call('drop_topic', [('topic', topic)], False, admin=True)


# ---- invariants of successful calls ---------------------------------------------------------

class Violation(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Violation(what)


def check_produce(w):
    def check(rows, cur, sql, call):
        n = w.partitions_of(call.present.get('topic'))
        part, key = call.present.get('"partition"'), call.present.get('key')
        for row in rows:
            if len(row) != 2:
                continue   # target-list shape: one composite column
            p, off = row
            expect(off is not None and off >= 0, 'produce returned offset %r' % (off,))
            if n:
                expect(0 <= p < n, 'produce returned partition %r of %r' % (p, n))
            if isinstance(part, Arg) and part.value is not None:
                expect(p == part.value, 'produce to partition %r returned partition %r' % (part.value, p))
            elif n and isinstance(key, Arg) and key.value is not None:
                cur.execute('SELECT pgtopic.key_partition(%s, %s)', (key.value, n))
                expect(cur.fetchone()[0] == p, 'produce by key %r went to partition %r, key_partition says otherwise'
                       % (key.value, p))
    return check


def check_batch(rows, cur, sql, call):
    expect(len(rows) == 1 and rows[0][0] is not None and rows[0][0] >= 0, 'produce_batch returned %r' % (rows,))


def check_fetch(rows, cur, sql, call):
    if not sql.startswith('SELECT * FROM pgtopic.fetch'):
        return
    limit = call.arg('max_messages', 100)
    if limit is not None and 'LIMIT 1' not in sql:
        expect(len(rows) <= limit, 'fetch returned %d rows for max_messages %d' % (len(rows), limit))
    offsets = [r[1] for r in rows]
    expect(offsets == sorted(set(offsets)), 'fetch offsets not strictly increasing: %r' % offsets[:20])
    frm = call.arg('from_offset')
    if frm is not None and offsets:
        expect(offsets[0] >= frm, 'fetch from %r returned offset %r' % (frm, offsets[0]))
    part = call.arg('"partition"')
    expect(all(r[0] == part for r in rows), 'fetch of partition %r returned other partitions' % part)


def check_consume(rows, cur, sql, call):
    if not sql.startswith('SELECT * FROM') or 'LIMIT' in sql:
        return
    limit = call.arg('max_messages', 100)
    if limit is not None:
        expect(len(rows) <= limit, 'consume returned %d rows for max_messages %d' % (len(rows), limit))
    seen = collections.defaultdict(list)
    for r in rows:
        seen[r[0]].append(r[1])
    for p, offs in seen.items():
        expect(offs == sorted(set(offs)), 'consume offsets of partition %r not increasing: %r' % (p, offs[:20]))


def check_offsets(rows, cur, sql, call):
    if not sql.startswith('SELECT * FROM'):
        return
    for p, start, hw, lso in rows:
        expect(0 <= lso <= hw and 0 <= start <= hw,
               'partition %r: log start %r, LSO %r, high watermark %r' % (p, start, lso, hw))


def check_key_partition(rows, cur, sql, call):
    p, n = rows[0][0], call.arg('partitions')
    if n is not None and n > 0 and p is not None:
        expect(0 <= p < n, 'key_partition returned %r for %r partitions' % (p, n))


# ---------------------------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------------------------

SERVER_SETTINGS = f"""
pgtopic.database = 'property'
pgtopic.maintenance_interval = '1s'
pgtopic.max_partitions = {MAX_PARTITIONS}
pgtopic.shared_partitions = 4096
max_prepared_transactions = 2
fsync = off
synchronous_commit = off
full_page_writes = off
restart_after_crash = on
log_line_prefix = '%m [%p] %e %u: '
log_min_messages = warning
log_min_error_statement = panic
"""


def setup_database(dsn):
    conn = connect_with_extension(dsn)
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
    if not cur.fetchone():
        cur.execute("CREATE ROLE %s LOGIN" % ROLE)
    cur.execute("GRANT USAGE ON SCHEMA pgtopic TO %s" % ROLE)
    cur.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgtopic TO %s" % ROLE)
    cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA pgtopic TO %s" % ROLE)
    for r in ('pgtopic_producer', 'pgtopic_consumer'):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,))
        if cur.fetchone():
            cur.execute("GRANT %s TO %s" % (r, ROLE))
    cur.execute("SELECT 1 FROM pg_proc WHERE proname = 'grant_topic' AND pronamespace = 'pgtopic'::regnamespace")
    per_topic_grants = cur.fetchone() is not None
    for name, parts in (('keep', 3), ('small', 1)):
        cur.execute("SELECT 1 FROM pgtopic.catalog_topics WHERE topic = %s", (name,))
        if not cur.fetchone():
            cur.execute("SELECT pgtopic.create_topic(%s, %s, segment_size => 7)", (name, parts))
            cur.execute("SELECT pgtopic.produce_batch(%s, array_agg('m' || i), array_agg('k' || (i %% 5))) "
                        "FROM generate_series(1, 40) AS i", (name,))
        if per_topic_grants:
            for right in ('produce', 'consume'):
                cur.execute("SELECT pgtopic.grant_topic(%s, %s, %s)", (name, ROLE, right))
    conn.close()


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def inconsistent(state):
    """SQLSTATEs that only pgtopic's own statements can raise here, so they mean a bug in it: an
    integrity violation (class 23: its catalog inserts, duplicate offsets) or a missing or
    duplicate storage table (42P01, 42P07) in its internal DDL and queries."""
    return state.startswith('23') or state in ('42P01', '42P07')


class Session:
    def __init__(self, dsn, role):
        self.dsn, self.role = dsn, role
        self.conn = None
        self.open = False     # a transaction left open by the previous case of this session

    def connect(self, deadline=60):
        end = time.time() + deadline
        while True:
            try:
                self.conn = psycopg2.connect(self.dsn)
                break
            except psycopg2.OperationalError:
                if time.time() > end:
                    raise
                time.sleep(0.5)
        self.open = False
        cur = self.conn.cursor()
        cur.execute("SET statement_timeout = '2s'")
        cur.execute("SET lock_timeout = '500ms'")
        cur.execute("SET client_min_messages = error")
        self.conn.commit()

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def lost(self):
        return self.conn is None or self.conn.closed != 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cases', type=int, default=3000)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--dsn', help='use this database (pgtopic preloaded) instead of a throwaway server')
    ap.add_argument('--dir', default=os.environ.get('PGTOPIC_PROPERTY_DIR', '/tmp/pgtopic-property'))
    ap.add_argument('--port', type=int, default=int(os.environ.get('PGTOPIC_PROPERTY_PORT', '55441')))
    ap.add_argument('--bindir', default=os.environ.get('PG_BINDIR', '/usr/lib/postgresql/15/bin'))
    ap.add_argument('--keep', action='store_true', help='leave the throwaway server running')
    ap.add_argument('--verbose', action='store_true', help='print every statement and its outcome')
    ap.add_argument('--allow-sqlstate', action='append', default=[], metavar='STATE',
                    help='do not fail on this integrity/catalog SQLSTATE (a known bug being fixed)')
    opts = ap.parse_args()
    allowed = set(opts.allow_sqlstate)

    server = None
    if opts.dsn:
        su_dsn = opts.dsn
        nu_dsn = opts.dsn + ' user=' + ROLE
    else:
        server = ThrowawayServer(opts.bindir, opts.dir, opts.port, SERVER_SETTINGS, database='property')
        server.start()
        su_dsn = 'host=%s port=%d dbname=property user=postgres' % (opts.dir, opts.port)
        nu_dsn = 'host=%s port=%d dbname=property user=%s' % (opts.dir, opts.port, ROLE)
    setup_database(su_dsn)
    log = server.log if server else None
    log_pos = 0
    all_log_problems = []

    rng = random.Random(opts.seed)
    world = World()
    g = Gen(rng, world)
    # Two superuser sessions and a non-superuser one; a case may leave its transaction open, so the
    # next cases of the other sessions run beside it (open producers, group handoffs, DDL waits).
    sessions = [Session(su_dsn, 'superuser'), Session(su_dsn, 'superuser'), Session(nu_dsn, ROLE)]
    admin = Session(su_dsn, 'admin')
    for s in sessions + [admin]:
        s.connect()
    admin.conn.autocommit = True
    world.refresh(admin.conn.cursor())

    counts = collections.Counter()
    by_state = collections.Counter()
    start = time.time()
    case = 0
    calls = 0

    def report(kind, sql, detail):
        print('%s: seed %d case %d: %s\n    %s' % (kind.upper(), opts.seed, case, detail, sql), flush=True)

    def reconnect_all():
        for other in sessions + [admin]:
            other.close()
        for other in sessions + [admin]:
            other.connect()
        admin.conn.autocommit = True

    def connection_lost(sql, err):
        nonlocal log_pos
        time.sleep(1)
        lines, log_pos = crash_lines(log, log_pos)
        all_log_problems.extend(lines)
        counts['crashes'] += 1
        report('crash', sql, 'connection lost: %s%s' % (str(err).strip()[:300],
                                                       ''.join('\n    server log: ' + x for x in lines[:5])))
        reconnect_all()

    while case < opts.cases:
        case += 1
        s = rng.choices(sessions, [5, 2, 3])[0]
        if s.lost():
            s.connect()
        n_calls = rng.choices([1, 2, 3], [7, 2, 1])[0]
        use_savepoints = s.open or n_calls > 1 or rng.random() < 0.1
        cur = s.conn.cursor()
        admin_touched = False
        lost = False
        for i in range(n_calls):
            if s.conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
                break
            call = make_call(g, world)
            admin_touched = admin_touched or call.admin
            if call.func is None:
                a = dict(call.args)
                sql, params = (('SELECT * FROM pgtopic.%s' % a['view'], []) if 'view' in a else (a['sql'], []))
            else:
                sql, params = render(call, g)
            try:
                text = cur.mogrify(sql, params).decode('utf-8', 'replace')
            except (psycopg2.Error, ValueError) as e:
                text = '%s -- %r' % (sql, e)
            shown = text if len(text) < 600 else text[:600] + '... (%d chars)' % len(text)
            calls += 1
            sp = 'c%d_%d' % (case, i)
            try:
                if use_savepoints:
                    cur.execute('SAVEPOINT ' + sp)
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
                counts['ok'] += 1
                if call.check:
                    try:
                        call.check(rows, cur, sql, call)
                    except Violation as v:
                        counts['violations'] += 1
                        report('violation', shown, str(v))
                if use_savepoints and rng.random() < 0.25:
                    cur.execute('ROLLBACK TO SAVEPOINT ' + sp)
                if opts.verbose:
                    print('ok    %s' % shown)
            except psycopg2.Error as e:
                if s.lost() or e.pgcode is None and isinstance(e, (psycopg2.InterfaceError, psycopg2.OperationalError)):
                    connection_lost(shown, e)
                    lost = True
                    break
                state = e.pgcode or 'none'
                by_state[state] += 1
                counts['errors'] += 1
                if opts.verbose:
                    print('%s %s\n      %s' % (state, shown, (e.pgerror or '').strip().splitlines()[0:1]))
                if state.startswith('XX') or state == 'none':
                    counts['internal'] += 1
                    report('internal error', shown, '%s %s' % (state, (e.pgerror or str(e)).strip()))
                elif inconsistent(state) and state not in allowed:
                    counts['inconsistent'] += 1
                    report('inconsistent', shown, '%s %s' % (state, (e.pgerror or str(e)).strip()))
                if use_savepoints:
                    try:
                        cur.execute('ROLLBACK TO SAVEPOINT ' + sp)
                    except psycopg2.Error:
                        pass
        if lost:
            continue
        try:
            r = rng.random()
            in_error = s.conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
            if r < 0.12 and not in_error and not s.open:
                s.open = True          # left open: the next cases of other sessions run beside it
            elif r < 0.15 and not in_error:
                # PREPARE after a produce must be refused; without one it works: clean up.
                s.open = False
                try:
                    cur.execute("PREPARE TRANSACTION 'pgtopic_property'")
                    s.conn.rollback()
                    s.conn.autocommit = True
                    cur.execute("ROLLBACK PREPARED 'pgtopic_property'")
                except psycopg2.Error as e:
                    by_state[e.pgcode or 'none'] += 1
                    if (e.pgcode or 'XX').startswith('XX'):
                        counts['internal'] += 1
                        report('internal error', 'PREPARE TRANSACTION', '%s %s' % (e.pgcode, e.pgerror))
                finally:
                    if not s.lost():
                        s.conn.rollback()
                        s.conn.autocommit = False
            elif r < 0.7:
                s.open = False
                s.conn.commit()
            else:
                s.open = False
                s.conn.rollback()
        except psycopg2.Error as e:
            if s.lost():
                connection_lost('COMMIT/ROLLBACK', e)
                continue
            by_state[e.pgcode or 'none'] += 1
            if (e.pgcode or 'XX').startswith('XX'):
                counts['internal'] += 1
                report('internal error', 'COMMIT', '%s %s' % (e.pgcode, e.pgerror))
            s.conn.rollback()
        if admin_touched or case % 50 == 0:
            try:
                world.refresh(admin.conn.cursor())
            except psycopg2.Error as e:
                if admin.lost():
                    connection_lost('(catalog refresh)', e)
        if rng.random() < 0.01:        # a session ends: its memberships and locks go with it
            victim = rng.choice(sessions)
            victim.close()
            victim.connect()

    elapsed = time.time() - start
    for s in sessions + [admin]:
        s.close()

    if server is not None:
        if opts.keep:
            print('property: server left running: psql -h %s -p %d -U postgres property' % (opts.dir, opts.port))
        else:
            server.stop()
    lines, log_pos = crash_lines(log, log_pos)
    all_log_problems.extend(lines)
    for line in all_log_problems[:20]:
        print('server log: %s' % line)

    states = ','.join('%s:%d' % kv for kv in sorted(by_state.items(), key=lambda kv: (-kv[1], kv[0])))
    crashes = max(counts['crashes'], len([x for x in all_log_problems if 'terminated by' in x]))
    print('property: cases=%d ok=%d errors=%d by_sqlstate=%s internal=%d crashes=%d'
          % (case, counts['ok'], counts['errors'], states, counts['internal'], crashes))
    print('property: %d calls in %.0fs, seed %d, violations=%d, inconsistent=%d, server log problems=%d'
          % (calls, elapsed, opts.seed, counts['violations'], counts['inconsistent'], len(all_log_problems)))
    return 1 if (counts['internal'] or crashes or counts['violations'] or counts['inconsistent']
                 or all_log_problems) else 0


if __name__ == '__main__':
    sys.exit(main())
