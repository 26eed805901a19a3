-- Limits: per-topic message size, produce_batch and poll caps, read-only transactions.
SELECT pgtopic.create_topic('lim', 1, max_message_bytes => 100);
SELECT topic, max_message_bytes FROM pgtopic.topics WHERE topic = 'lim';
SELECT pgtopic.produce('lim', repeat('x', 100));
SELECT pgtopic.produce('lim', repeat('x', 101));
SELECT pgtopic.produce_batch('lim', ARRAY['ok', repeat('y', 101)]);
SELECT pgtopic.alter_topic('lim', max_message_bytes => -1);   -- back to pgtopic.max_message_bytes
SELECT max_message_bytes FROM pgtopic.topics WHERE topic = 'lim';
SELECT pgtopic.produce('lim', repeat('x', 101)) IS NOT NULL AS accepted;

-- a 100 MB and a 1 GB value read from a table are refused from their TOAST headers, before they
-- are detoasted: the backend never holds them (the 1 GB one is refused in milliseconds)
CREATE TABLE big_values AS SELECT repeat('x', 100 * 1024 * 1024) AS v;
CREATE TABLE gigabyte_value AS SELECT repeat('y', 1073741000) AS v;
SELECT pgtopic.produce('lim', v) FROM big_values;
SELECT pgtopic.produce('lim', v) FROM gigabyte_value;
SELECT pgtopic.produce_batch('lim', ARRAY[v]) FROM big_values;
DROP TABLE big_values, gigabyte_value;

-- produce_batch caps
SET pgtopic.max_batch_messages = 3;
SELECT pgtopic.produce_batch('lim', ARRAY['1', '2', '3']);
SELECT pgtopic.produce_batch('lim', ARRAY['1', '2', '3', '4']);
RESET pgtopic.max_batch_messages;
SET pgtopic.max_batch_bytes = 1024;
SELECT pgtopic.produce_batch('lim', ARRAY[repeat('z', 600), repeat('z', 600)]);
RESET pgtopic.max_batch_bytes;
SELECT high_watermark FROM pgtopic.partitions WHERE topic = 'lim';

-- poll caps: messages per call, and value bytes per call (at least one message)
SELECT pgtopic.create_topic('lim-poll', 1);
SELECT pgtopic.produce_batch('lim-poll', array_agg(repeat('p', 100))) FROM generate_series(1, 10);
SET pgtopic.max_poll_messages = 5;
SELECT count(*) FROM pgtopic.fetch('lim-poll', 0, 0, 6);
SELECT count(*) FROM pgtopic.consume('lim-poll', 'g', 6);
SELECT count(*) FROM pgtopic.fetch('lim-poll', 0, 0, 5);
RESET pgtopic.max_poll_messages;
SET pgtopic.max_poll_bytes = 250;
SELECT count(*) FROM pgtopic.fetch('lim-poll', 0, 0, 100);
SELECT min(msg_offset), max(msg_offset) FROM pgtopic.consume('lim-poll', 'g', 100);
SELECT min(msg_offset), max(msg_offset) FROM pgtopic.consume('lim-poll', 'g', 100);
SET pgtopic.max_poll_bytes = 1;
SELECT count(*) FROM pgtopic.fetch('lim-poll', 0, 0, 100);
RESET pgtopic.max_poll_bytes;
-- keys and headers count as returned too (decompressed: a key that compresses to almost
-- nothing costs its full size)
SELECT pgtopic.create_topic('lim-keys', 1);
SELECT pgtopic.produce_batch('lim-keys', array_agg('v'::text), array_agg(repeat('k', 100000)),
                             array_agg(jsonb_build_object('h', repeat('h', 100)))) FROM generate_series(1, 10);
SET pgtopic.max_poll_bytes = 250000;
SELECT count(*), min(msg_offset), max(msg_offset) FROM pgtopic.fetch('lim-keys', 0, 0, 100);
SELECT count(*), min(msg_offset), max(msg_offset) FROM pgtopic.consume('lim-keys', 'g', 100);
SELECT count(*), min(msg_offset), max(msg_offset) FROM pgtopic.consume('lim-keys', 'g', 100);
RESET pgtopic.max_poll_bytes;
SELECT pgtopic.leave('lim-keys', 'g');
-- produce_batch's byte limit covers the keys and headers arrays as well as the messages
SET pgtopic.max_batch_bytes = 1024;
SELECT pgtopic.produce_batch('lim-keys', ARRAY['a', 'b'], keys => ARRAY[repeat('k', 600), repeat('k', 600)]);
SELECT pgtopic.produce_batch('lim-keys', ARRAY['a', 'b'], headers => ARRAY[jsonb_build_object('h', repeat('h', 1100)), '{}']);
SELECT pgtopic.produce_batch('lim-keys', ARRAY['a', 'b'], keys => ARRAY['k1', 'k2']);
RESET pgtopic.max_batch_bytes;
SELECT pgtopic.drop_topic('lim-keys');

-- no writes in read-only transactions
BEGIN READ ONLY;
SELECT pgtopic.produce('lim', 'x');
ROLLBACK;
BEGIN READ ONLY;
SELECT pgtopic.produce_batch('lim', ARRAY['x']);
ROLLBACK;

-- segment_size is bounded (offsets must not overflow)
SELECT pgtopic.create_topic('huge-seg', segment_size => 4611686018427387904);

SELECT pgtopic.drop_topic('lim');
SELECT pgtopic.drop_topic('lim-poll');
