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
SELECT group_name, "partition", pid = pg_backend_pid() AS mine, joined_at IS NOT NULL AS since
  FROM pgtopic.consumer_lag WHERE topic = 'g2' ORDER BY 1, 2;

-- leave gives the partitions back at once and commits first
SELECT pgtopic.leave('g2', 'billing');
SELECT pgtopic.leave('g2', 'billing');
SELECT "partition", pid FROM pgtopic.consumer_lag WHERE group_name = 'billing' ORDER BY 1;
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

-- seek of a group that does not exist says so (a typo must not create a group), for every seek
SELECT pgtopic.seek('g2', 'seek_only', 1, 1);
SELECT pgtopic.seek_to_beginning('g2', 'seek_only');
SELECT pgtopic.seek_to_end('g2', 'seek_only', 0);
SELECT pgtopic.seek_to_time('g2', 'seek_only', now());
SELECT count(*) FROM pgtopic.catalog_groups WHERE group_name = 'seek_only';
-- with create_group the group is made at that position: the offset row is made (upsert), then
-- moved (update) by a plain seek, the group existing now
SELECT pgtopic.seek('g2', 'seek_only', 1, 1, create_group => true);
SELECT "partition", committed_offset FROM pgtopic.catalog_offsets JOIN pgtopic.catalog_groups USING (group_id)
 WHERE group_name = 'seek_only';
SELECT pgtopic.seek('g2', 'seek_only', 1, 0);
SELECT "partition", committed_offset FROM pgtopic.catalog_offsets JOIN pgtopic.catalog_groups USING (group_id)
 WHERE group_name = 'seek_only';

-- only what the caller read counts as handed out: LIMIT 3, then the next call starts at the 4th
SELECT pgtopic.create_topic('glim', 1);
SELECT pgtopic.produce_batch('glim', array_agg('m' || i)) FROM generate_series(0, 9) AS i;
SELECT msg_offset FROM pgtopic.consume('glim', 'l', 100) LIMIT 3;
SELECT msg_offset FROM pgtopic.consume('glim', 'l', 2);
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE group_name = 'l';
-- a cursor closed early: the rows fetched count, the others come again
BEGIN;
DECLARE c CURSOR FOR SELECT msg_offset FROM pgtopic.consume('glim', 'l', 100);
FETCH 2 FROM c;
-- a second consume of the member while its first result is open is refused
SAVEPOINT s;
SELECT count(*) FROM pgtopic.consume('glim', 'l', 100);
ROLLBACK TO s;
CLOSE c;
COMMIT;
SELECT msg_offset FROM pgtopic.consume('glim', 'l', 100);
-- in the select list too
SELECT pgtopic.seek('glim', 'l', 0, 0);
SELECT (pgtopic.consume('glim', 'l', 100)).msg_offset LIMIT 1;
SELECT msg_offset FROM pgtopic.consume('glim', 'l', 1);

-- ROLLBACK TO SAVEPOINT puts the positions back where the savepoint was
SELECT pgtopic.create_topic('sp', 1);
SELECT pgtopic.produce_batch('sp', array_agg('m' || i)) FROM generate_series(0, 9) AS i;
CREATE TABLE sp_out (o bigint);
-- (the issue's repro: the group was joined inside the savepoint, so the join is rolled back too)
BEGIN;
SAVEPOINT s;
INSERT INTO sp_out SELECT msg_offset FROM pgtopic.consume('sp', 'g', 5);
ROLLBACK TO s;
SELECT pgtopic.commit('sp', 'g');
COMMIT;
SELECT count(*) FROM pgtopic.consume('sp', 'g', 0);
BEGIN;
SAVEPOINT s;
INSERT INTO sp_out SELECT msg_offset FROM pgtopic.consume('sp', 'g', 5);
ROLLBACK TO s;
SELECT pgtopic.commit('sp', 'g');
COMMIT;
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE topic = 'sp';
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 3);
-- a released savepoint keeps what it read; the outer ROLLBACK undoes both
BEGIN;
SAVEPOINT a;
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 2);
RELEASE a;
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 2);
ROLLBACK;
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 2);

-- a PL/pgSQL EXCEPTION block that catches a failure in the processing: nothing is lost
SELECT pgtopic.seek('sp', 'g', 0, 0);
SELECT count(*) FROM pgtopic.consume('sp', 'g', 0);
CREATE FUNCTION process_batch(fail boolean) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    BEGIN
        INSERT INTO sp_out SELECT msg_offset FROM pgtopic.consume('sp', 'g', 4);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF fail THEN
            RAISE EXCEPTION 'processing failed';
        END IF;
        PERFORM pgtopic.commit('sp', 'g');
        RETURN n;
    EXCEPTION WHEN raise_exception THEN
        RETURN -1;
    END;
END $$;
SELECT process_batch(true);
SELECT process_batch(false);
SELECT array_agg(o ORDER BY o) FROM sp_out;
SELECT "partition", committed_offset FROM pgtopic.consumer_lag WHERE topic = 'sp';

-- PREPARE TRANSACTION after consume, commit or seek is refused before anything changes
BEGIN;
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 2);
PREPARE TRANSACTION 'p1';
SELECT msg_offset FROM pgtopic.consume('sp', 'g', 2);
BEGIN;
SELECT pgtopic.seek('sp', 'g', 0, 1);
PREPARE TRANSACTION 'p2';
SELECT count(*) FROM pg_prepared_xacts;
-- a group created in a transaction that is prepared: refused, and the session still works
BEGIN;
SELECT count(*) FROM pgtopic.consume('sp', 'newgroup', 1);
PREPARE TRANSACTION 'p3';
SELECT count(*) FROM pgtopic.consume('sp', 'newgroup', 1);
SELECT pgtopic.commit('sp', 'newgroup');
-- and one created in a rolled-back subtransaction
BEGIN;
SAVEPOINT s;
SELECT count(*) FROM pgtopic.consume('sp', 'subgroup', 1);
ROLLBACK TO s;
SELECT count(*) FROM pgtopic.consume('sp', 'subgroup', 1);
COMMIT;
SELECT count(*) FROM pgtopic.consume('sp', 'subgroup', 100);

-- a dropped topic's memberships are released; a re-created topic of the same name starts clean
SELECT pgtopic.drop_topic('sp');
SELECT count(*) FROM pgtopic.group_members WHERE topic = 'sp';
SELECT pgtopic.create_topic('sp', 1);
SELECT pgtopic.produce_batch('sp', ARRAY['new0', 'new1']);
SELECT msg_offset, value FROM pgtopic.consume_text('sp', 'g', 10);

-- poison messages: a value that does not convert comes back as NULL with the reason and the raw
-- bytes, and the group moves on (nothing is skipped silently)
SELECT pgtopic.create_topic('poison', 1);
SELECT pgtopic.produce('poison', '{"ok": 1}'::jsonb);
SELECT pgtopic.produce('poison', 'not json'::text);
SELECT pgtopic.produce('poison', '\x6100ff'::bytea);
SELECT pgtopic.produce('poison', '{"ok": 2}'::jsonb);
SELECT msg_offset, value, error, raw FROM pgtopic.consume_json('poison', 'j', 10);
SELECT count(*) FROM pgtopic.consume_json('poison', 'j', 10);
SELECT msg_offset, value, error, raw FROM pgtopic.consume_text('poison', 't', 10);

-- member_id: a member held by a lease (pgtopic.session_timeout), not by the session
SELECT msg_offset FROM pgtopic.consume('glim', 'leased', 3, member_id => 'm-1');
SELECT member_id, kind, lease_expiry > now() AS leased, partitions FROM pgtopic.group_members WHERE group_name = 'leased';
-- the session is another member (it gets nothing: m-1 owns the only partition)
SELECT count(*) FROM pgtopic.consume('glim', 'leased', 3);
SELECT pgtopic.commit('glim', 'leased', member_id => 'm-1');
SELECT "partition", committed_offset, member_id FROM pgtopic.consumer_lag WHERE group_name = 'leased';
SELECT pgtopic.commit('glim', 'leased', member_id => 'never-consumed');
SELECT pgtopic.seek('glim', 'leased', 0, 0);
SELECT pgtopic.seek('glim', 'leased', 0, 1, member_id => 'm-1');
SELECT msg_offset FROM pgtopic.consume('glim', 'leased', 2, member_id => 'm-1');
SELECT pgtopic.leave('glim', 'leased', member_id => 'm-1');
SELECT pgtopic.leave('glim', 'leased', member_id => 'm-1');
SELECT pgtopic.leave('glim', 'leased');
SELECT count(*) FROM pgtopic.group_members WHERE group_name = 'leased';
SELECT count(*) FROM pgtopic.consume('glim', 'leased', 3, member_id => '');
SELECT count(*) FROM pgtopic.consume('glim', 'leased', 3, member_id => repeat('x', 129));

-- the converting forms in a long poll (they peek with the stored row shape)
SELECT pgtopic.produce('poison', 'late'::text);
SELECT msg_offset, value, error FROM pgtopic.consume_text('poison', 't', 10, 200);
SELECT msg_offset, value, error FROM pgtopic.consume_json('poison', 'j', 10, 200);
SELECT count(*) FROM pgtopic.consume_text('poison', 't', 10, 100);

-- clean up (later tests list every topic)
SELECT pgtopic.drop_topic(t) FROM unnest(ARRAY['glim', 'sp', 'poison']) AS t;
