-- fetch: offset order, from_offset, max_messages, segments, the views.
SELECT pgtopic.create_topic('f', 2, segment_size => 10);
SELECT pgtopic.produce_batch('f', array_agg('m' || i), array_agg(CASE WHEN i % 2 = 0 THEN 'a' ELSE 'd' END)) FROM generate_series(1, 45) AS i;
SELECT "partition", high_watermark, last_stable_offset, log_start_offset FROM pgtopic.partitions WHERE topic = 'f' ORDER BY 1;

-- offset order within a partition, across segments
SELECT bool_and(msg_offset = rn - 1) AS dense_and_ordered, count(*)
  FROM (SELECT msg_offset, row_number() OVER () AS rn FROM pgtopic.fetch('f', 0, 0, 1000)) s;

-- from_offset and max_messages
SELECT msg_offset, key, convert_from(value, 'UTF8') AS value FROM pgtopic.fetch('f', 1, 8, 4);
SELECT count(*) FROM pgtopic.fetch('f', 1, 0, 0);
SELECT count(*) FROM pgtopic.fetch('f', 1, 1000);
SELECT count(*) FROM pgtopic.fetch('f', 0, 0);  -- all 22: fewer than the default max_messages (100)

-- a dropped segment in the middle is skipped (retention will drop from the start)
SELECT format('DROP TABLE pgtopic_data.topic_%s_p0_s1', topic_id) AS ddl FROM pgtopic.catalog_topics WHERE topic = 'f' \gset
:ddl;
SELECT min(msg_offset), max(msg_offset), count(*) FROM pgtopic.fetch('f', 0, 5, 1000);
SELECT log_start_offset FROM pgtopic.partitions WHERE topic = 'f' AND "partition" = 0;

-- views
SELECT topic, partitions, bytes > 0 AS has_bytes FROM pgtopic.topics WHERE topic = 'f';
SELECT "partition", bytes > 0 AS has_bytes FROM pgtopic.partitions WHERE topic = 'f' ORDER BY 1;

-- fetch_text / fetch_json: the value converted; a value that does not convert is NULL with the
-- reason and its raw bytes, and the call goes on
SELECT pgtopic.create_topic('fetch-as', 1);
SELECT pgtopic.produce('fetch-as', '{"a": 1}'::jsonb);
SELECT pgtopic.produce('fetch-as', 'not json'::text);
SELECT pgtopic.produce('fetch-as', '\x00ff'::bytea);
SELECT msg_offset, value, error, raw FROM pgtopic.fetch_text('fetch-as', 0, 0);
SELECT msg_offset, value, error IS NOT NULL AS failed, raw IS NOT NULL AS has_raw FROM pgtopic.fetch_json('fetch-as', 0, 0);
-- wait_ms: with nothing to read the call waits, then returns nothing; with messages, at once
SELECT count(*) FROM pgtopic.fetch('fetch-as', 0, 3, 10, wait_ms => 100);
SELECT count(*) FROM pgtopic.fetch('fetch-as', 0, 0, 10, wait_ms => 60000);
SELECT count(*) FROM pgtopic.fetch('fetch-as', 0, 0, wait_ms => -1);
SELECT pgtopic.drop_topic('fetch-as');
