-- pg_dump / pg_restore round trip: the catalog (pg_extension_config_dump), every topic's
-- storage and messages come back; offsets continue after the restored data.
SELECT pgtopic.create_topic('dumped', 2, segment_size => 10);
SELECT pgtopic.produce_batch('dumped', array_agg('v' || i), array_agg('k' || i)) FROM generate_series(1, 25) AS i;
BEGIN;
SELECT * FROM pgtopic.produce('dumped', 'rolled back', partition => 0);
ROLLBACK;
CREATE TEMP TABLE before_dump AS
SELECT f.* FROM generate_series(0, 1) AS p, LATERAL pgtopic.fetch('dumped', p, 0, 1000) AS f;
SELECT count(*) FROM before_dump;
-- a consumer group with committed offsets
SELECT count(*) FROM pgtopic.consume('dumped', 'dg', 10);
SELECT pgtopic.commit('dumped', 'dg');
SELECT pgtopic.leave('dumped', 'dg');

CREATE DATABASE pgtopic_restored;
\! pg_dump --format=custom --file=test/results/dump_restore.dump contrib_regression
\! pg_restore --exit-on-error --dbname=pgtopic_restored test/results/dump_restore.dump

\c pgtopic_restored
SELECT topic, partitions, segment_size FROM pgtopic.topics ORDER BY topic;
SELECT "partition", count(*), min(msg_offset), max(msg_offset), string_agg(convert_from(value, 'UTF8'), ',' ORDER BY msg_offset) AS values
  FROM generate_series(0, 1) AS p, LATERAL pgtopic.fetch('dumped', p, 0, 1000)
 GROUP BY 1 ORDER BY 1;
-- the group continues from its committed offsets
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'dg' ORDER BY 1;
SELECT count(*) FROM pgtopic.consume('dumped', 'dg', 100);
-- offsets continue above the restored messages and above every offset handed out before the
-- dump, also the rolled-back one (catalog_partitions.reserved_offset is dumped too; the log end
-- jumps to it, as a sequence's does after a restart)
SELECT * FROM pgtopic.produce('dumped', 'after restore', partition => 0);
SELECT * FROM pgtopic.produce('dumped', 'after restore', partition => 1);
-- a new topic gets a new id (the id sequence was dumped too)
SELECT pgtopic.create_topic('new-after-restore');
SELECT count(DISTINCT topic_id) = count(*) AS ids_unique FROM pgtopic.catalog_topics;

\c contrib_regression
DROP DATABASE pgtopic_restored;
