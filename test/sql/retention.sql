-- Retention drops whole segments (never DELETE), moves the log start offset; readers and
-- consumer groups behind the log start continue as documented (auto.offset.reset).
SELECT pgtopic.create_topic('ret', 1, segment_size => 10);
SELECT pgtopic.produce_batch('ret', array_agg('m' || i)) FROM generate_series(0, 44) AS i;

-- maintenance creates the segment holding the high watermark and the next one ahead of need
SELECT action, "partition", segment FROM pgtopic.run_maintenance() WHERE topic = 'ret' ORDER BY segment;
SELECT segment FROM pgtopic._segments((SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'ret'), 0);
SELECT count(*) FROM pgtopic.run_maintenance() WHERE topic = 'ret';  -- nothing more to do

-- a group that read the first 5 messages, and one that read nothing
SELECT count(*) FROM pgtopic.consume('ret', 'slow', 5);
SELECT pgtopic.commit('ret', 'slow');
SELECT pgtopic.leave('ret', 'slow');

-- size: keep the partition under about two segments' worth of bytes
SELECT pgtopic.alter_topic('ret', retention_bytes => (SELECT 2 * pg_total_relation_size(relid)
                                                      FROM pgtopic._segments((SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'ret'), 0)
                                                     WHERE segment = 0));
SELECT action, segment FROM pgtopic.run_maintenance() WHERE topic = 'ret' ORDER BY segment;
SELECT segment FROM pgtopic._segments((SELECT topic_id FROM pgtopic.catalog_topics WHERE topic = 'ret'), 0);
SELECT log_start_offset, high_watermark, last_stable_offset FROM pgtopic.partitions WHERE topic = 'ret';

-- fetch below the log start returns from the log start
SELECT min(msg_offset), count(*) FROM pgtopic.fetch('ret', 0, 0, 100);
-- a group positioned below the log start continues at the log start (auto_offset_reset = earliest)
SELECT min(msg_offset), max(msg_offset), count(*) FROM pgtopic.consume('ret', 'slow', 100);
-- ... or at the end with auto_offset_reset = latest
SELECT pgtopic.seek('ret', 'latecomer', 0, 3, create_group => true);
SET pgtopic.auto_offset_reset = latest;
SELECT count(*) FROM pgtopic.consume('ret', 'latecomer', 100);
RESET pgtopic.auto_offset_reset;

-- the active segment is never dropped, however small the limit
SELECT pgtopic.alter_topic('ret', retention_bytes => 1);
SELECT action, segment FROM pgtopic.run_maintenance() WHERE topic = 'ret' ORDER BY segment;
SELECT log_start_offset, high_watermark FROM pgtopic.partitions WHERE topic = 'ret';
SELECT count(*) FROM pgtopic.fetch('ret', 0, 0, 100);

-- time: segments whose newest message is older than retention go
SELECT pgtopic.create_topic('ret-time', 1, retention => '1 hour', segment_size => 10);
SELECT pgtopic.produce_batch('ret-time', array_agg('m' || i)) FROM generate_series(0, 24) AS i;
SELECT count(*) FROM pgtopic.run_maintenance() WHERE topic = 'ret-time' AND action = 'drop segment';
-- age the first segment (test only: rewrite its timestamps)
SELECT format('UPDATE pgtopic_data.topic_%s_p0_s0 SET produced_at = now() - interval ''2 hours''', topic_id) AS age
  FROM pgtopic.catalog_topics WHERE topic = 'ret-time' \gset
:age;
SELECT action, segment FROM pgtopic.run_maintenance() WHERE topic = 'ret-time' ORDER BY segment;
SELECT log_start_offset FROM pgtopic.partitions WHERE topic = 'ret-time';

-- an open producer transaction keeps its segment: only stable segments are dropped
BEGIN;
SELECT * FROM pgtopic.produce('ret', 'open');
SELECT last_stable_offset FROM pgtopic.partitions WHERE topic = 'ret';
ROLLBACK;

-- the durable bounds: retention recorded the log start of each partition it dropped segments
-- of; the reservation covers every offset handed out (also the rolled-back one just now)
SELECT t.topic, b.log_start_offset, b.reserved_offset >= o.high_watermark AS reserved_covers_log_end
  FROM pgtopic.catalog_partitions b JOIN pgtopic.catalog_topics t USING (topic_id)
  JOIN LATERAL pgtopic.partition_offsets(t.topic) o ON o."partition" = b."partition"
 WHERE t.topic IN ('ret', 'ret-time') ORDER BY 1;
-- with every segment dropped the log start stays where retention left it
SELECT pgtopic.create_topic('ret-all', 1, retention_bytes => 1, segment_size => 5);
SELECT pgtopic.produce_batch('ret-all', array_agg('m' || i)) FROM generate_series(0, 9) AS i;
SELECT action, segment FROM pgtopic.run_maintenance() WHERE topic = 'ret-all' AND action = 'drop segment' ORDER BY segment;
SELECT log_start_offset, high_watermark, last_stable_offset FROM pgtopic.partitions WHERE topic = 'ret-all';
SELECT pgtopic.drop_topic('ret-all');
