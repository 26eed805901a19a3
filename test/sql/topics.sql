-- Topic administration: create, alter, drop; storage layout; the catalog and views.
CREATE EXTENSION pgtopic;

SELECT pgtopic.create_topic('orders', 3);
SELECT pgtopic.create_topic('audit.log_v1-x');
SELECT pgtopic.create_topic('metrics', partitions => 2, retention => '7 days', retention_bytes => 1000000, segment_size => 500);

SELECT topic, partitions, retention, retention_bytes, segment_size FROM pgtopic.topics ORDER BY topic;

-- storage: one LIST-partitioned table per topic, one RANGE-partitioned table per partition,
-- segments below; names come from ids, never from the topic's name
SELECT c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid) AS bound
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pgtopic_data' AND c.relkind IN ('r', 'p')
   AND c.relname LIKE format('topic_%s\_%%', (SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'metrics'))
 ORDER BY c.relname;
SELECT pg_get_partkeydef(format('pgtopic_data.topic_%s', topic_id)::regclass) FROM pgtopic.catalog_topics WHERE topic = 'orders';
SELECT pg_get_partkeydef(format('pgtopic_data.topic_%s_p0', topic_id)::regclass) FROM pgtopic.catalog_topics WHERE topic = 'orders';

-- duplicates are refused
SELECT pgtopic.create_topic('orders');

-- partitions only grow
SELECT pgtopic.alter_topic('orders', partitions => 5);
SELECT partitions FROM pgtopic.topics WHERE topic = 'orders';
SELECT count(*) FROM pgtopic.partitions WHERE topic = 'orders';
SELECT pgtopic.alter_topic('orders', partitions => 2);
SELECT partitions FROM pgtopic.topics WHERE topic = 'orders';

-- retention: NULL keeps, a value <= 0 removes the limit
SELECT pgtopic.alter_topic('metrics', retention => '1 day');
SELECT retention, retention_bytes FROM pgtopic.topics WHERE topic = 'metrics';
SELECT pgtopic.alter_topic('metrics', retention => '-1 second', retention_bytes => -1);
SELECT retention, retention_bytes FROM pgtopic.topics WHERE topic = 'metrics';

-- drop removes storage and catalog
SELECT pgtopic.produce('audit.log_v1-x', 'x');
SELECT pgtopic.drop_topic('audit.log_v1-x');
SELECT count(*) FROM pgtopic.topics WHERE topic = 'audit.log_v1-x';
SELECT pgtopic.fetch('audit.log_v1-x', 0, 0);
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pgtopic_data' AND c.relname NOT LIKE ALL (
       SELECT format('topic_%s%%', topic_id) FROM pgtopic.catalog_topics);

-- a re-created topic starts again at offset 0
SELECT pgtopic.create_topic('audit.log_v1-x');
SELECT * FROM pgtopic.produce('audit.log_v1-x', 'again');

-- a topic dropped and re-created in one transaction that rolls back leaves the old one intact
BEGIN;
SELECT pgtopic.drop_topic('orders');
ROLLBACK;
SELECT topic, partitions FROM pgtopic.topics WHERE topic = 'orders';

-- the catalog is dumped with the data
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'pgtopic' ORDER BY 1;

-- if_not_exists / if_exists: a NOTICE and nothing else
SELECT pgtopic.create_topic('maybe', 2, if_not_exists => true);
SELECT pgtopic.create_topic('maybe', 5, if_not_exists => true);
SELECT topic, partitions FROM pgtopic.topics WHERE topic = 'maybe';
SELECT pgtopic.create_topic('maybe', 2);
SELECT pgtopic.drop_topic('maybe', if_exists => true);
SELECT pgtopic.drop_topic('maybe', if_exists => true);
SELECT pgtopic.drop_topic('maybe');

-- reading the views keeps no lock on the segments they measure (a partition whose offsets are
-- first loaded in the transaction keeps one: its highest segment)
SELECT pgtopic.create_topic('many-segments', 2, segment_size => 2);
SELECT pgtopic.produce_batch('many-segments', array_agg(i::text), array_agg((i % 2)::text)) FROM generate_series(1, 40) AS i;
BEGIN;
SELECT count(*) AS partitions, sum(bytes) > 0 AS measured FROM pgtopic.partitions WHERE topic = 'many-segments';
SELECT count(*) <= 2 AS at_most_one_per_partition FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND c.relname LIKE (SELECT 'topic_' || topic_id || '_p%_s%' FROM pgtopic.catalog_topics WHERE topic = 'many-segments');
COMMIT;
SELECT pgtopic.drop_topic('many-segments');
