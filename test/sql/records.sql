-- Messages as Kafka clients send them: binary keys, headers in order with duplicates and null
-- values, the client's timestamp; and how the text-key readers show them.
SET client_min_messages = warning;
SELECT pgtopic.create_topic('rec', partitions => 4);

-- a binary key (not text: a zero byte, invalid UTF-8), headers with a duplicate, a null and an
-- empty value, a CreateTime
SELECT * FROM pgtopic.produce_record('rec', '\x00ff'::bytea, key => '\x00fe80'::bytea,
       header_keys => ARRAY['trace', 'trace', 'empty', 'null'],
       header_values => ARRAY['\x01'::bytea, '\x02'::bytea, ''::bytea, NULL],
       created_at => '2026-01-02 03:04:05.678+00');
-- a text key given as bytes is stored as text: the text readers see it, on the same partition
-- as produce() with that key
SELECT * FROM pgtopic.produce_record('rec', 'v2', key => convert_to('user-7', 'UTF8'));
SELECT pgtopic.key_partition(convert_to('user-7', 'UTF8'), 4) = pgtopic.key_partition('user-7', 4) AS same_partition;
SELECT * FROM pgtopic.produce('rec', 'v3'::text, key => 'user-7', headers => '{"n": 1, "s": "x", "z": null}');
-- a tombstone (NULL value) and an empty value are different things
SELECT * FROM pgtopic.produce_record('rec', NULL, key => '\x00'::bytea, "partition" => 0);
SELECT * FROM pgtopic.produce_record('rec', '', "partition" => 0);

-- byte for byte
SELECT "partition", msg_offset, key, value, header_keys, header_values, created_at
  FROM pgtopic.fetch_records('rec', pgtopic.key_partition('\x00fe80'::bytea, 4), 0, 10) WHERE msg_offset = 0;
SELECT "partition", msg_offset, key, value, header_keys, header_values, created_at IS NULL AS no_created_at
  FROM pgtopic.fetch_records('rec', pgtopic.key_partition('user-7', 4), 0, 10);
SELECT msg_offset, key, value IS NULL AS tombstone, value, header_keys
  FROM pgtopic.fetch_records('rec', 0, 0, 10) WHERE key = '\x00' OR key IS NULL;

-- offsets for times use the client's timestamp when there is one (created_at, January 2026),
-- not produced_at (now): nothing on partition 2 is that recent, so the last stable offset
SELECT pgtopic.offset_for_time('rec', pgtopic.key_partition('\x00fe80'::bytea, 4), '2026-06-01 00:00+00') AS after_created_at,
       pgtopic.offset_for_time('rec', pgtopic.key_partition('\x00fe80'::bytea, 4), '2026-01-01 00:00+00') AS before_created_at;

-- the text-key readers: a key that is not text comes back NULL, Kafka headers as a jsonb object
-- (the later duplicate wins; a value that is not text is JSON null)
SELECT msg_offset, key, headers FROM pgtopic.fetch('rec', pgtopic.key_partition('\x00fe80'::bytea, 4), 0, 10)
 WHERE msg_offset = 0;
SELECT msg_offset, key, headers FROM pgtopic.fetch('rec', pgtopic.key_partition('user-7', 4), 0, 10);

-- consume_records in a group, then the same group's consume resumes after them
SELECT count(*) AS records FROM pgtopic.consume_records('rec', 'g', 100);
SELECT pgtopic.commit('rec', 'g');
SELECT * FROM pgtopic.produce_record('rec', 'later', "partition" => 1);
SELECT msg_offset, value FROM pgtopic.consume('rec', 'g', 100);

-- bad input
SELECT * FROM pgtopic.produce_record('rec', 'x', header_keys => ARRAY['a'], header_values => NULL);
SELECT * FROM pgtopic.produce_record('rec', 'x', header_keys => ARRAY['a', 'b'], header_values => ARRAY['\x01'::bytea]);
SELECT * FROM pgtopic.produce_record('rec', 'x', header_keys => ARRAY[NULL::text], header_values => ARRAY['\x01'::bytea]);
SELECT * FROM pgtopic.produce_record('rec', 'x', header_keys => ARRAY[['a'], ['b']], header_values => ARRAY[['\x01'::bytea], ['\x02'::bytea]]);
SELECT * FROM pgtopic.produce_record('rec', 'x', created_at => 'infinity');
SELECT * FROM pgtopic.produce_record('rec', 'x', "partition" => 4);
SELECT * FROM pgtopic.produce_record('nope', 'x');
SELECT pgtopic.key_partition('\x01'::bytea, 0);
-- empty header arrays are no headers
SELECT * FROM pgtopic.produce_record('rec', 'noh', header_keys => '{}', header_values => '{}', "partition" => 3);
SELECT header_keys IS NULL AS no_headers FROM pgtopic.fetch_records('rec', 3, 0, 10) WHERE value = 'noh';

SELECT pgtopic.drop_topic('rec');
