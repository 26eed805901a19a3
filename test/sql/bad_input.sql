-- Bad input, table-driven: every public function with NULL in each argument, unknown topics,
-- invalid and hostile names, out-of-range numbers, oversized messages, malformed arrays.
-- Each case runs in its own subtransaction; the table shows the SQLSTATE and message it got
-- ('00000' and what it returned when the call is allowed). Afterwards: no case got XX000 or a
-- SQLSTATE other than the one it should, and nothing was half-written (catalog, storage tables,
-- offsets in shared memory).
\set VERBOSITY terse

SELECT pgtopic.create_topic('bad_input', 3);
SELECT pgtopic.create_topic('bad_input.ok');   -- takes the calls that are allowed
SELECT pgtopic.create_topic('bad_input.wide', 257);  -- more partitions than one transaction may produce to
SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b', 'c', 'd', 'e', 'f'], keys => ARRAY['1', '2', '3', '4', '5', '6']);

-- what must not change: the catalog; the storage tables and offsets of this test's topics, and
-- tables of no topic (segments after the first are left out: the maintenance worker creates
-- those ahead of need whenever it runs)
CREATE TEMP VIEW bad_state AS
SELECT 'catalog' AS what, format('%s partitions=%s segment_size=%s retention=%s retention_bytes=%s', topic,
       partitions, segment_size, retention, retention_bytes) AS item
  FROM pgtopic.catalog_topics
UNION ALL
SELECT 'storage', format('%s: %s (%s)', coalesce(t.topic, '<no topic>'), regexp_replace(c.relname, '^topic_[0-9]+', 'topic_<id>'),
       c.relkind)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pgtopic.catalog_topics t ON t.topic_id = substring(c.relname FROM '^topic_([0-9]+)')::integer
 WHERE n.nspname = 'pgtopic_data' AND c.relname !~ '_s([1-9][0-9]*)(_pkey)?$'
   AND (t.topic IS NULL OR t.topic_id >= (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'bad_input'))
UNION ALL
SELECT 'offsets', format('%s/%s log_start=%s hw=%s lso=%s', p.topic, p."partition", p.log_start_offset, p.high_watermark,
       p.last_stable_offset)
  FROM pgtopic.partitions p JOIN pgtopic.catalog_topics t USING (topic)
 WHERE t.topic_id >= (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'bad_input')
   AND t.topic <> 'bad_input.wide';  -- checked on its own below
CREATE TEMP TABLE state_before AS SELECT * FROM bad_state;
SELECT what, item FROM state_before WHERE what <> 'catalog' AND item !~ '^bad_input.wide' ORDER BY 1, 2;

-- The cases: section, name, SQL, the SQLSTATE it must give ('00000': allowed).
CREATE TEMP TABLE bad_cases (
    id       serial PRIMARY KEY,
    section  text NOT NULL,
    name     text NOT NULL,
    sql      text NOT NULL,
    expected text NOT NULL
);

-- 1. the topic argument of every function that takes one, against each kind of bad name
CREATE TEMP TABLE topic_functions (n serial, fn text, template text);
INSERT INTO topic_functions (fn, template) VALUES
    ('create_topic',          $$SELECT pgtopic.create_topic(%s, 1)$$),
    ('alter_topic',           $$SELECT pgtopic.alter_topic(%s, partitions => 4)$$),
    ('drop_topic',            $$SELECT pgtopic.drop_topic(%s)$$),
    ('produce(text)',         $$SELECT * FROM pgtopic.produce(%s, 'v'::text)$$),
    ('produce(bytea)',        $$SELECT * FROM pgtopic.produce(%s, '\x00'::bytea)$$),
    ('produce(jsonb)',        $$SELECT * FROM pgtopic.produce(%s, '{}'::jsonb)$$),
    ('produce_batch(text[])', $$SELECT pgtopic.produce_batch(%s, ARRAY['v']::text[])$$),
    ('produce_batch(bytea[])', $$SELECT pgtopic.produce_batch(%s, ARRAY['\x00']::bytea[])$$),
    ('produce_batch(jsonb[])', $$SELECT pgtopic.produce_batch(%s, ARRAY['{}']::jsonb[])$$),
    ('fetch',                 $$SELECT * FROM pgtopic.fetch(%s, 0, 0)$$),
    ('partition_offsets',     $$SELECT * FROM pgtopic.partition_offsets(%s)$$);

CREATE TEMP TABLE bad_names (n serial, label text, name text, expected text, everywhere boolean);
INSERT INTO bad_names (label, name, expected, everywhere) VALUES
    ('NULL',                  NULL,                    '22004', true),
    ('unknown',               'bad_input.nope',        '42704', true),
    ('injection',             '''; drop table x; --',  '22023', true),
    ('quotes',                'it''s "quoted"',        '22023', true),
    ('250 chars',             repeat('n', 250),        '22023', true),
    ('empty',                 '',                      '22023', true),
    ('"."',                   '.',                     '22023', false),
    ('".."',                  '..',                    '22023', false),
    ('space',                 'bad input',             '22023', false),
    ('newline at end',        'bad_input' || chr(10),  '22023', false),
    ('slash',                 'bad/input',             '22023', false),
    ('non-ASCII',             'bäd_input',             '22023', false),
    ('percent',               'bad%input',             '22023', false),
    ('other case (unknown)',  'BAD_INPUT',             '42704', false);
-- the SQL checks (create_topic, alter_topic, drop_topic) and the C++ one (the rest) must agree on
-- every name; create_topic is left out for valid names (it would create them)
INSERT INTO bad_cases (section, name, sql, expected)
SELECT 'topic', f.fn || ': ' || b.label, format(f.template, quote_nullable(b.name)), b.expected
  FROM bad_names b CROSS JOIN topic_functions f
 WHERE (b.everywhere OR f.fn IN ('create_topic', 'drop_topic', 'produce(text)', 'fetch'))
   AND NOT (f.fn = 'create_topic' AND b.expected = '42704')
 ORDER BY b.n, f.n;
-- a 249-character name is valid (and unknown); a taken name is refused
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('topic', 'produce(text): 249 chars (unknown)', format($$SELECT * FROM pgtopic.produce(%L, 'v'::text)$$, repeat('n', 249)), '42704'),
    ('topic', 'fetch: 249 chars (unknown)',         format($$SELECT * FROM pgtopic.fetch(%L, 0, 0)$$, repeat('n', 249)), '42704'),
    ('topic', 'create_topic: existing topic',       $$SELECT pgtopic.create_topic('bad_input')$$, '42710');

-- 2. NULL in every other argument: an error where the argument is required, else its default
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('null', 'create_topic: partitions NULL',        $$SELECT pgtopic.create_topic('bad_input.n', NULL)$$, '22023'),
    ('null', 'create_topic: retention, retention_bytes, segment_size NULL (no limits, default size)',
             $$SELECT pgtopic.create_topic('bad_input.defaults', 1, NULL, NULL, NULL)$$, '00000'),
    ('null', 'alter_topic: partitions, retention, retention_bytes NULL (no change)',
             $$SELECT pgtopic.alter_topic('bad_input', NULL, NULL, NULL)$$, '00000'),
    ('null', 'produce: untyped NULL value (resolves to the text overload)', $$SELECT * FROM pgtopic.produce('bad_input.ok', NULL)$$, '00000'),
    ('null', 'produce(text): value NULL (tombstone)',  $$SELECT * FROM pgtopic.produce('bad_input.ok', NULL::text)$$, '00000'),
    ('null', 'produce(bytea): value NULL (tombstone)', $$SELECT * FROM pgtopic.produce('bad_input.ok', NULL::bytea)$$, '00000'),
    ('null', 'produce(jsonb): value NULL (tombstone)', $$SELECT * FROM pgtopic.produce('bad_input.ok', NULL::jsonb)$$, '00000'),
    ('null', 'produce(text): key, headers, partition NULL',
             $$SELECT * FROM pgtopic.produce('bad_input.ok', 'v'::text, key => NULL, headers => NULL, partition => NULL)$$, '00000'),
    ('null', 'produce(bytea): key, headers, partition NULL',
             $$SELECT * FROM pgtopic.produce('bad_input.ok', '\x00'::bytea, key => NULL, headers => NULL, partition => NULL)$$, '00000'),
    ('null', 'produce(jsonb): key, headers, partition NULL',
             $$SELECT * FROM pgtopic.produce('bad_input.ok', '{}'::jsonb, key => NULL, headers => NULL, partition => NULL)$$, '00000'),
    ('null', 'produce_batch: untyped NULL messages (ambiguous overload)', $$SELECT pgtopic.produce_batch('bad_input', NULL)$$, '42725'),
    ('null', 'produce_batch(text[]): messages NULL',  $$SELECT pgtopic.produce_batch('bad_input', NULL::text[])$$, '22004'),
    ('null', 'produce_batch(bytea[]): messages NULL', $$SELECT pgtopic.produce_batch('bad_input', NULL::bytea[])$$, '22004'),
    ('null', 'produce_batch(jsonb[]): messages NULL', $$SELECT pgtopic.produce_batch('bad_input', NULL::jsonb[])$$, '22004'),
    ('null', 'produce_batch(text[]): keys, headers NULL',
             $$SELECT pgtopic.produce_batch('bad_input.ok', ARRAY['v']::text[], NULL, NULL)$$, '00000'),
    ('null', 'produce_batch(bytea[]): keys, headers NULL',
             $$SELECT pgtopic.produce_batch('bad_input.ok', ARRAY['\x00']::bytea[], NULL, NULL)$$, '00000'),
    ('null', 'produce_batch(jsonb[]): keys, headers NULL',
             $$SELECT pgtopic.produce_batch('bad_input.ok', ARRAY['{}']::jsonb[], NULL, NULL)$$, '00000'),
    ('null', 'produce_batch(text[]): NULL elements (tombstone, no key, no headers)',
             $$SELECT pgtopic.produce_batch('bad_input.ok', ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[])$$, '00000'),
    ('null', 'fetch: partition NULL',    $$SELECT * FROM pgtopic.fetch('bad_input', NULL, 0)$$, '22004'),
    ('null', 'fetch: from_offset NULL',  $$SELECT * FROM pgtopic.fetch('bad_input', 0, NULL)$$, '22004'),
    ('null', 'fetch: max_messages NULL', $$SELECT * FROM pgtopic.fetch('bad_input', 0, 0, NULL)$$, '22004'),
    ('null', 'key_partition: key NULL (STRICT)',        $$SELECT pgtopic.key_partition(NULL, 3)$$, '00000'),
    ('null', 'key_partition: partitions NULL (STRICT)', $$SELECT pgtopic.key_partition('k', NULL)$$, '00000'),
    ('null', 'murmur2: data NULL (STRICT)',             $$SELECT pgtopic.murmur2(NULL)$$, '00000');

-- 3. numbers out of range: partitions, partition, offsets, counts, retention, segment size
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('range', 'create_topic: partitions 0',          $$SELECT pgtopic.create_topic('bad_input.r', 0)$$, '22023'),
    ('range', 'create_topic: partitions -1',         $$SELECT pgtopic.create_topic('bad_input.r', -1)$$, '22023'),
    ('range', 'create_topic: partitions 1001 (above pgtopic.max_partitions)', $$SELECT pgtopic.create_topic('bad_input.r', 1001)$$, '22023'),
    ('range', 'create_topic: partitions 2147483647', $$SELECT pgtopic.create_topic('bad_input.r', 2147483647)$$, '22023'),
    ('range', 'create_topic: retention 0',           $$SELECT pgtopic.create_topic('bad_input.r', retention => '0')$$, '22023'),
    ('range', 'create_topic: retention -1 day',      $$SELECT pgtopic.create_topic('bad_input.r', retention => '-1 day')$$, '22023'),
    ('range', 'create_topic: retention_bytes 0',     $$SELECT pgtopic.create_topic('bad_input.r', retention_bytes => 0)$$, '22023'),
    ('range', 'create_topic: retention_bytes -1',    $$SELECT pgtopic.create_topic('bad_input.r', retention_bytes => -1)$$, '22023'),
    ('range', 'create_topic: segment_size 0',        $$SELECT pgtopic.create_topic('bad_input.r', segment_size => 0)$$, '22023'),
    ('range', 'create_topic: segment_size -1',       $$SELECT pgtopic.create_topic('bad_input.r', segment_size => -1)$$, '22023'),
    ('range', 'alter_topic: partitions 0',           $$SELECT pgtopic.alter_topic('bad_input', 0)$$, '22023'),
    ('range', 'alter_topic: partitions -5',          $$SELECT pgtopic.alter_topic('bad_input', -5)$$, '22023'),
    ('range', 'alter_topic: partitions 1001 (above pgtopic.max_partitions)', $$SELECT pgtopic.alter_topic('bad_input', 1001)$$, '22023'),
    ('range', 'alter_topic: shrink 3 -> 2 partitions', $$SELECT pgtopic.alter_topic('bad_input', 2)$$, '22023'),
    ('range', 'alter_topic: shrink 3 -> 1 partition',  $$SELECT pgtopic.alter_topic('bad_input', 1)$$, '22023'),
    ('range', 'alter_topic: 3 -> 3 partitions (no change)', $$SELECT pgtopic.alter_topic('bad_input', 3)$$, '00000'),
    ('range', 'produce(text): partition -1',         $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, partition => -1)$$, '22023'),
    ('range', 'produce(text): partition 3 of 3',     $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, partition => 3)$$, '22023'),
    ('range', 'produce(text): partition 3 of 3, with a key', $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, key => 'k', partition => 3)$$, '22023'),
    ('range', 'produce(bytea): partition 2147483647', $$SELECT * FROM pgtopic.produce('bad_input', '\x00'::bytea, partition => 2147483647)$$, '22023'),
    ('range', 'produce(jsonb): partition -2147483648', $$SELECT * FROM pgtopic.produce('bad_input', '{}'::jsonb, partition => -2147483648)$$, '22023'),
    ('range', 'fetch: partition -1',                 $$SELECT * FROM pgtopic.fetch('bad_input', -1, 0)$$, '22023'),
    ('range', 'fetch: partition 3 of 3',             $$SELECT * FROM pgtopic.fetch('bad_input', 3, 0)$$, '22023'),
    ('range', 'fetch: from_offset -1',               $$SELECT * FROM pgtopic.fetch('bad_input', 0, -1)$$, '22023'),
    ('range', 'fetch: from_offset -9223372036854775808', $$SELECT * FROM pgtopic.fetch('bad_input', 0, -9223372036854775808)$$, '22023'),
    ('range', 'fetch: max_messages -1',              $$SELECT * FROM pgtopic.fetch('bad_input', 0, 0, -1)$$, '22023'),
    ('range', 'fetch: max_messages 0 (nothing)',     $$SELECT * FROM pgtopic.fetch('bad_input', 0, 0, 0)$$, '00000'),
    ('range', 'fetch: from_offset 9223372036854775807 (nothing)', $$SELECT * FROM pgtopic.fetch('bad_input', 0, 9223372036854775807)$$, '00000'),
    ('range', 'key_partition: partitions 0',         $$SELECT pgtopic.key_partition('k', 0)$$, '22023'),
    ('range', 'key_partition: partitions -1',        $$SELECT pgtopic.key_partition('k', -1)$$, '22023');

-- 4. headers that are not a JSON object; arrays of the wrong shape
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('shape', 'produce(text): headers array',        $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, headers => '["a", "b"]')$$, '22023'),
    ('shape', 'produce(bytea): headers string',      $$SELECT * FROM pgtopic.produce('bad_input', '\x00'::bytea, headers => '"trace"')$$, '22023'),
    ('shape', 'produce(jsonb): headers number',      $$SELECT * FROM pgtopic.produce('bad_input', '{}'::jsonb, headers => '1')$$, '22023'),
    ('shape', 'produce(text): headers JSON null',    $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, headers => 'null')$$, '22023'),
    ('shape', 'produce(text): headers true',         $$SELECT * FROM pgtopic.produce('bad_input', 'v'::text, headers => 'true')$$, '22023'),
    ('shape', 'produce_batch(text[]): headers element an array', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], headers => ARRAY['{}', '[]']::jsonb[])$$, '22023'),
    ('shape', 'produce_batch(bytea[]): headers element a string', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['\x00']::bytea[], headers => ARRAY['"h"']::jsonb[])$$, '22023'),
    ('shape', 'produce_batch(jsonb[]): headers element a number', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['{}']::jsonb[], headers => ARRAY['42']::jsonb[])$$, '22023'),
    ('shape', 'produce_batch(text[]): 3 messages, 2 keys', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b', 'c'], keys => ARRAY['k1', 'k2'])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 1 message, 2 keys',  $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a'], keys => ARRAY['k1', 'k2'])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 0 messages, 1 key',  $$SELECT pgtopic.produce_batch('bad_input', ARRAY[]::text[], keys => ARRAY['k1'])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 2 messages, 3 headers', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], headers => ARRAY['{}', '{}', '{}']::jsonb[])$$, '2202E'),
    ('shape', 'produce_batch(bytea[]): 2 messages, 1 key', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['\x00', '\x01']::bytea[], keys => ARRAY['k'])$$, '2202E'),
    ('shape', 'produce_batch(jsonb[]): 1 message, 0 headers', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['{}']::jsonb[], headers => ARRAY[]::jsonb[])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 2-D messages',  $$SELECT pgtopic.produce_batch('bad_input', ARRAY[['a', 'b'], ['c', 'd']])$$, '2202E'),
    ('shape', 'produce_batch(bytea[]): 2-D messages', $$SELECT pgtopic.produce_batch('bad_input', ARRAY[['\x00'], ['\x01']]::bytea[])$$, '2202E'),
    ('shape', 'produce_batch(jsonb[]): 2-D messages', $$SELECT pgtopic.produce_batch('bad_input', ARRAY[['{}'], ['{}']]::jsonb[])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 2-D keys',      $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], keys => ARRAY[['k1'], ['k2']])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 2-D headers',   $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], headers => ARRAY[['{}'], ['{}']]::jsonb[])$$, '2202E'),
    ('shape', 'produce_batch(text[]): 0 messages (nothing)', $$SELECT pgtopic.produce_batch('bad_input', ARRAY[]::text[])$$, '00000');

-- 5. sizes, with pgtopic.max_message_bytes = 1000 (key + value + headers, in bytes)
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('size', 'produce(text): value 1001 bytes',      $$SELECT * FROM pgtopic.produce('bad_input', repeat('x', 1001))$$, '54000'),
    ('size', 'produce(text): value 334 x 3-byte characters (1002 bytes)', $$SELECT * FROM pgtopic.produce('bad_input', repeat('€', 334))$$, '54000'),
    ('size', 'produce(bytea): value 1001 bytes',     $$SELECT * FROM pgtopic.produce('bad_input', convert_to(repeat('x', 1001), 'UTF8'))$$, '54000'),
    ('size', 'produce(jsonb): a string of 999 characters', $$SELECT * FROM pgtopic.produce('bad_input', to_jsonb(repeat('x', 999)))$$, '54000'),
    ('size', 'produce(text): key 1001 bytes',        $$SELECT * FROM pgtopic.produce('bad_input', ''::text, key => repeat('k', 1001))$$, '54000'),
    ('size', 'produce(text): headers {"h": 1000 characters}',    $$SELECT * FROM pgtopic.produce('bad_input', ''::text, headers => jsonb_build_object('h', repeat('h', 1000)))$$, '54000'),
    ('size', 'produce(text): key 500 + value 501',   $$SELECT * FROM pgtopic.produce('bad_input', repeat('x', 501), key => repeat('k', 500))$$, '54000'),
    ('size', 'produce(text): tombstone with key 1001', $$SELECT * FROM pgtopic.produce('bad_input', NULL::text, key => repeat('k', 1001))$$, '54000'),
    ('size', 'produce(text): key 500 + value 500 (allowed)', $$SELECT * FROM pgtopic.produce('bad_input.ok', repeat('x', 500), key => repeat('k', 500), partition => 0)$$, '00000'),
    ('size', 'produce_batch(text[]): 3rd of 3 messages 1001 bytes',  $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b', repeat('x', 1001)])$$, '54000'),
    ('size', 'produce_batch(bytea[]): 2nd of 2 messages 1001 bytes', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['\x00'::bytea, convert_to(repeat('x', 1001), 'UTF8')])$$, '54000'),
    ('size', 'produce_batch(jsonb[]): 1st of 2 a string of 999 characters', $$SELECT pgtopic.produce_batch('bad_input', ARRAY[to_jsonb(repeat('x', 999)), '{}'])$$, '54000'),
    ('size', 'produce_batch(text[]): 2nd key 1001 bytes', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], keys => ARRAY['k', repeat('k', 1001)])$$, '54000'),
    ('size', 'produce_batch(text[]): 2nd headers {"h": 1000 characters}', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', 'b'], headers => ARRAY['{}', jsonb_build_object('h', repeat('h', 1000))])$$, '54000'),
    ('size', 'SET pgtopic.max_message_bytes = 0',    $$SELECT set_config('pgtopic.max_message_bytes', '0', true)$$, '22023'),
    ('size', 'SET pgtopic.max_partitions = 0',       $$SELECT set_config('pgtopic.max_partitions', '0', true)$$, '22023'),
    ('size', 'SET pgtopic.no_such_setting',          $$SELECT set_config('pgtopic.no_such_setting', '1', true)$$, '42602');

-- 6. 100 MB built server-side, against the default limit (1 MiB)
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('100MB', 'produce(text): value 100 MB',               $$SELECT * FROM pgtopic.produce('bad_input', repeat('x', 100 * 1024 * 1024))$$, '54000'),
    ('100MB', 'produce_batch(text[]): 2nd message 100 MB', $$SELECT pgtopic.produce_batch('bad_input', ARRAY['a', repeat('x', 100 * 1024 * 1024)])$$, '54000');

-- 7. one batch over more partitions than pgtopic.max_partitions_per_transaction (256): the error
-- is raised inside the C++ frame that owns std::vectors (pg_call) and must reach the caller as is
INSERT INTO bad_cases (section, name, sql, expected) VALUES
    ('wide', 'produce_batch(text[]): 3000 keys over 257 partitions',
             $$SELECT pgtopic.produce_batch('bad_input.wide', array_agg('v' || i), array_agg('k' || i)) FROM generate_series(1, 3000) AS i$$, '54000');

-- Runs one section's cases, each in a subtransaction, and keeps what they gave.
CREATE TEMP TABLE bad_results (id integer PRIMARY KEY, sqlstate text NOT NULL, result text);
CREATE FUNCTION pg_temp.run_cases(p_section text)
RETURNS TABLE ("case" text, sqlstate text, message text) LANGUAGE plpgsql AS $$
DECLARE
    c        record;
    v_state  text;
    v_result text;
BEGIN
    FOR c IN SELECT * FROM bad_cases b WHERE b.section = p_section ORDER BY b.id LOOP
        BEGIN
            EXECUTE format('SELECT string_agg(to_jsonb(r)::text, '', '') FROM (%s) AS r', c.sql) INTO v_result;
            v_state := '00000';
            v_result := coalesce('returned ' || v_result, 'returned no rows');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_result = MESSAGE_TEXT;
        END;
        INSERT INTO bad_results VALUES (c.id, v_state, v_result);
        "case" := c.name;
        sqlstate := v_state;
        -- long runs of one character (the 249- and 250-character names) are shown by their length
        message := CASE WHEN v_result ~ '(.)\1{19,}'
                        THEN regexp_replace(v_result, '(.)\1{19,}', '<\1 x ' || length(substring(v_result FROM '((.)\2{19,})')) || '>')
                        ELSE v_result END;
        RETURN NEXT;
    END LOOP;
END $$;

SELECT * FROM pg_temp.run_cases('topic');
SELECT * FROM pg_temp.run_cases('null');
SELECT * FROM pg_temp.run_cases('range');
SELECT * FROM pg_temp.run_cases('shape');
SET pgtopic.max_message_bytes = 1000;
SELECT * FROM pg_temp.run_cases('size');
RESET pgtopic.max_message_bytes;
SHOW pgtopic.max_message_bytes;
SELECT * FROM pg_temp.run_cases('100MB');
SELECT * FROM pg_temp.run_cases('wide');

-- every case ran, none got XX000, none got another SQLSTATE than it should
SELECT count(*) AS cases, count(r.id) AS ran, count(*) FILTER (WHERE r.sqlstate = 'XX000') AS internal_errors
  FROM bad_cases c LEFT JOIN bad_results r USING (id);
SELECT c.section, c.name, c.expected, r.sqlstate
  FROM bad_cases c JOIN bad_results r USING (id)
 WHERE r.sqlstate IS DISTINCT FROM c.expected ORDER BY c.id;

-- nothing half-written: the only changes are the allowed calls' (bad_input.defaults created,
-- messages on bad_input.ok); the failed calls took no offsets (high watermarks unchanged)
CREATE TEMP TABLE state_after AS SELECT * FROM bad_state;
SELECT d.change, d.what, d.item
  FROM ((SELECT '+' AS change, * FROM state_after EXCEPT SELECT '+', * FROM state_before)
        UNION ALL
        (SELECT '-', * FROM state_before EXCEPT SELECT '-', * FROM state_after)) AS d
 ORDER BY d.what, d.item, d.change;
SELECT "partition", msg_offset, key, value, headers
  FROM generate_series(0, 2) AS p, LATERAL pgtopic.fetch('bad_input', p, 0) ORDER BY 1, 2;
SELECT msg_offset, length(key) AS key_length, length(value) AS value_length, headers
  FROM pgtopic.fetch('bad_input.ok', 0, 0) ORDER BY 1;
-- the failed wide batch left gaps (offsets taken, as by any rollback) and no readable message
SELECT count(*) AS partitions, count(*) FILTER (WHERE high_watermark > 0) AS with_gaps,
       bool_and(last_stable_offset = high_watermark) AS all_stable,
       sum((SELECT count(*) FROM pgtopic.fetch('bad_input.wide', o."partition", 0))) AS messages
  FROM pgtopic.partition_offsets('bad_input.wide') AS o;
