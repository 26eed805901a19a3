-- Consumer groups in one session: consume, auto-commit, commit, rollback, seek, resets,
-- pub-sub across groups, text/JSON variants, the views.
SELECT pgtopic.create_topic('g2', 2);
SELECT pgtopic.produce_batch('g2', array_agg('m' || i), array_agg(CASE WHEN i % 2 = 0 THEN 'a' ELSE 'd' END))
  FROM generate_series(1, 10) AS i;

-- the first call joins and reads from every partition (this session is the only member),
-- fairly: both partitions contribute
SELECT "partition", count(*) FROM pgtopic.consume('g2', 'billing', 4) GROUP BY 1 ORDER BY 1;
-- nothing is committed yet: auto-commit happens at the next call
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
SELECT "partition", msg_offset, key, convert_from(value, 'UTF8') AS value FROM pgtopic.consume('g2', 'billing', 4) ORDER BY 1, 2;
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
SELECT pgtopic.commit('g2', 'billing');
SELECT "partition", committed_offset, lag FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;

-- ROLLBACK returns the session's positions to where the transaction began
BEGIN;
SELECT "partition", msg_offset FROM pgtopic.consume('g2', 'billing', 10) ORDER BY 1, 2;
ROLLBACK;
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
-- ... so the same messages are handed out again
BEGIN;
SELECT "partition", msg_offset FROM pgtopic.consume('g2', 'billing', 10) ORDER BY 1, 2;
CREATE TABLE processed AS SELECT 'work done in the same transaction' AS note;
SELECT pgtopic.commit('g2', 'billing');
COMMIT;
SELECT "partition", committed_offset, lag FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
SELECT count(*) FROM pgtopic.consume('g2', 'billing', 10);

-- another group sees everything (pub-sub), from the earliest offset
SELECT count(*), count(DISTINCT ("partition", msg_offset)) FROM pgtopic.consume('g2', 'analytics', 100);

-- seek replays (from the owning session: moves its position and commits)
SELECT pgtopic.seek('g2', 'billing', 1, 2);
SELECT "partition", msg_offset FROM pgtopic.consume('g2', 'billing', 100) ORDER BY 1, 2;
SELECT pgtopic.seek_to_beginning('g2', 'billing', 0);
SELECT "partition", msg_offset FROM pgtopic.consume('g2', 'billing', 100) ORDER BY 1, 2;
SELECT pgtopic.seek_to_end('g2', 'billing');
SELECT count(*) FROM pgtopic.consume('g2', 'billing', 100);
SELECT pgtopic.seek_to_time('g2', 'billing', now() - interval '1 hour');
SELECT count(*) FROM pgtopic.consume('g2', 'billing', 100);
SELECT pgtopic.seek_to_time('g2', 'billing', now() + interval '1 hour');
SELECT count(*) FROM pgtopic.consume('g2', 'billing', 100);

-- new messages after the end are consumed once
SELECT pgtopic.produce_batch('g2', ARRAY['late1', 'late2'], ARRAY['a', 'd']);
SELECT "partition", msg_offset, convert_from(value, 'UTF8') FROM pgtopic.consume('g2', 'billing', 100) ORDER BY 1, 2;
SELECT count(*) FROM pgtopic.consume('g2', 'billing', 100);

-- text and JSON without casts
SELECT pgtopic.create_topic('events', 1);
SELECT pgtopic.produce('events', '{"kind": "click", "x": 3}'::jsonb);
SELECT pgtopic.produce('events', '{"kind": "view"}'::jsonb, headers => '{"v": "1"}');
SELECT msg_offset, value ->> 'kind' AS kind, value, headers FROM pgtopic.consume_json('events', 'j', 10);
SELECT pgtopic.seek_to_beginning('events', 'j');
SELECT msg_offset, value, upper(value) FROM pgtopic.consume_text('events', 'j', 10);

-- pgtopic.auto_offset_reset = latest: a new group starts at the end
SET pgtopic.auto_offset_reset = latest;
SELECT count(*) FROM pgtopic.consume('g2', 'newcomer', 100);
SELECT pgtopic.produce('g2', 'after join', partition => 0);
SELECT "partition", convert_from(value, 'UTF8') FROM pgtopic.consume('g2', 'newcomer', 100);
RESET pgtopic.auto_offset_reset;

-- views
SELECT group_name, topic, pid = pg_backend_pid() AS me, partitions FROM pgtopic.group_members ORDER BY 1, 2;
SELECT group_name, "partition", owner_pid = pg_backend_pid() AS mine, owner_since IS NOT NULL AS since
  FROM pgtopic.consumer_lag WHERE topic = 'g2' ORDER BY 1, 2;

-- leave gives the partitions back at once and commits first
SELECT pgtopic.leave('g2', 'billing');
SELECT pgtopic.leave('g2', 'billing');
SELECT "partition", owner_pid FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
-- commit needs membership
SELECT pgtopic.commit('g2', 'billing');

-- the session that holds a partition's last stable offset back is shown
BEGIN;
SELECT * FROM pgtopic.produce('g2', 'open', partition => 1);
SELECT topic, "partition", first_offset, pid = pg_backend_pid() AS me, state FROM pgtopic.lso_holders;
ROLLBACK;
SELECT count(*) FROM pgtopic.lso_holders;

-- a new session continues where the group committed
SELECT pgtopic.consume('g2', 'analytics', 0);  -- auto-commits the earlier batch
\c
-- (the old session's backend exits after the reconnect: wait until its ownership locks are gone)
DO $$ BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'client backend'
                                AND datname = current_database() AND pid <> pg_backend_pid());
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) FROM pgtopic.consume('g2', 'analytics', 100);
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'analytics' ORDER BY 1;

-- drop_topic drops the groups and their offsets
SELECT pgtopic.drop_topic('events');
SELECT count(*) FROM pgtopic.catalog_groups g WHERE NOT EXISTS (SELECT 1 FROM pgtopic.catalog_topics t WHERE t.topic_id = g.topic_id);

-- seek by a group that never consumed: the offset row is made (upsert), then moved (update)
SELECT pgtopic.seek('g2', 'seek_only', 1, 1);
SELECT "partition", committed_offset FROM pgtopic.catalog_offsets JOIN pgtopic.catalog_groups USING (group_id)
 WHERE group_name = 'seek_only';
SELECT pgtopic.seek('g2', 'seek_only', 1, 0);
SELECT "partition", committed_offset FROM pgtopic.catalog_offsets JOIN pgtopic.catalog_groups USING (group_id)
 WHERE group_name = 'seek_only';
