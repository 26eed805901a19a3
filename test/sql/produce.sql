-- produce and produce_batch: value types, keys, headers, explicit partitions, offsets.
SELECT pgtopic.create_topic('p3', 3);

-- explicit partition
SELECT * FROM pgtopic.produce('p3', 'hello'::text, partition => 1);
SELECT * FROM pgtopic.produce('p3', '\x00ff'::bytea, partition => 1);
SELECT * FROM pgtopic.produce('p3', '{"a": [1, 2]}'::jsonb, partition => 1);
SELECT * FROM pgtopic.produce('p3', 'untyped literal is text', partition => 1);
SELECT msg_offset, key, value, headers FROM pgtopic.fetch('p3', 1, 0);

-- key -> Kafka's default partitioner, so the same key always lands on the same partition
SELECT k, pgtopic.key_partition(k, 3) AS expected, (pgtopic.produce('p3', 'v', key => k)).partition AS actual
  FROM unnest(ARRAY['alice', 'bob', 'carol', 'dave', 'erin', '']) AS k;
SELECT count(DISTINCT p."partition"), count(*)
  FROM generate_series(1, 20) AS i, LATERAL pgtopic.produce('p3', 'v' || i, key => 'same-key') AS p;

-- neither key nor partition: spread evenly over the partitions
SELECT pgtopic.create_topic('spread', 4);
SELECT p."partition", count(*)
  FROM generate_series(1, 40) AS i, LATERAL pgtopic.produce('spread', 'v' || i) AS p
 GROUP BY 1 ORDER BY 1;

-- headers and a NULL value (a tombstone, as in Kafka)
SELECT * FROM pgtopic.produce('p3', NULL::text, key => 'gone', headers => '{"trace": "t-1", "n": 2}', partition => 2);
SELECT msg_offset, key, value IS NULL AS tombstone, headers FROM pgtopic.fetch('p3', 2, 0) WHERE key = 'gone';

-- produced_at is set by the server
SELECT count(*) FROM pgtopic.fetch('p3', 1, 0) WHERE produced_at BETWEEN now() - interval '1 minute' AND clock_timestamp();

-- produce_batch: counts, keys keep their order within their partition, offsets are dense per call
SELECT pgtopic.create_topic('batch', 2);
SELECT pgtopic.produce_batch('batch', ARRAY['a1', 'd1', 'a2', 'd2', 'a3'], ARRAY['a', 'd', 'a', 'd', 'a']);
SELECT "partition", msg_offset, key, convert_from(value, 'UTF8') AS value
  FROM generate_series(0, 1) AS p, LATERAL pgtopic.fetch('batch', p, 0)
 ORDER BY 1, 2;
SELECT pgtopic.produce_batch('batch', ARRAY['{"x": 1}', '{"y": 2}']::jsonb[], NULL, ARRAY['{"h": 1}', NULL]::jsonb[]);
SELECT pgtopic.produce_batch('batch', ARRAY['\x01', '\x02']::bytea[]);
SELECT pgtopic.produce_batch('batch', ARRAY[]::text[]);
SELECT pgtopic.produce_batch('batch', ARRAY['with null', NULL]::text[], ARRAY['k', 'k']);
SELECT sum(high_watermark) FROM pgtopic.partitions WHERE topic = 'batch';

-- a batch larger than a segment lands in consecutive segments, without gaps
SELECT pgtopic.create_topic('segmented', 1, segment_size => 100);
SELECT pgtopic.produce_batch('segmented', array_agg(i::text)) FROM generate_series(0, 349) AS i;
SELECT count(*), min(msg_offset), max(msg_offset), bool_and(convert_from(value, 'UTF8')::bigint = msg_offset)
  FROM pgtopic.fetch('segmented', 0, 0, 1000);
SELECT count(*) AS segments FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhparent
 WHERE c.relname = format('topic_%s_p0', (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'segmented'));

-- rolled-back offsets stay gaps; later produces continue above them
BEGIN;
SELECT * FROM pgtopic.produce('segmented', 'rolled back');
ROLLBACK;
SELECT * FROM pgtopic.produce('segmented', 'kept');
SELECT msg_offset, convert_from(value, 'UTF8') FROM pgtopic.fetch('segmented', 0, 348);

-- a transaction reads the LSO of its own uncommitted produce as a barrier: it does not see itself
BEGIN;
SELECT * FROM pgtopic.produce('segmented', 'mine');
SELECT high_watermark, last_stable_offset FROM pgtopic.partitions WHERE topic = 'segmented';
SELECT count(*) FROM pgtopic.fetch('segmented', 0, 351);
COMMIT;
SELECT count(*) FROM pgtopic.fetch('segmented', 0, 351);

-- produce_batch_offsets: each message's partition and offset, in the array's order; a key's
-- messages get consecutive offsets in order
SELECT pgtopic.create_topic('batch-offsets', 3);
SELECT * FROM pgtopic.produce_batch_offsets('batch-offsets', ARRAY['a', 'b', 'c', 'd', 'e'],
                                            keys => ARRAY['k1', 'k2', 'k1', 'k3', 'k1']);
CREATE TEMP TABLE produced AS
SELECT * FROM pgtopic.produce_batch_offsets('batch-offsets', ARRAY['f', 'g']::bytea[], keys => ARRAY['k1', 'k2']);
SELECT o.ordinality, o."partition", o.msg_offset, convert_from(f.value, 'UTF8') AS value, f.key
  FROM produced AS o JOIN LATERAL pgtopic.fetch('batch-offsets', o."partition", o.msg_offset, 1) AS f ON true ORDER BY 1;
SELECT * FROM pgtopic.produce_batch_offsets('batch-offsets', ARRAY[]::jsonb[]);
SELECT pgtopic.drop_topic('batch-offsets');
