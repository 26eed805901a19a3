-- Privileges: a role with no grants can do nothing; the shipped roles; per-topic rights.
-- Every cell of the matrix runs as that role and is rolled back; it shows ok or the SQLSTATE.
SELECT pgtopic.create_topic('secret', 2);
SELECT pgtopic.create_topic('other', 1);
SELECT pgtopic.produce('secret', 'hidden', partition => 0);
SELECT pgtopic.produce('other', 'elsewhere');

CREATE ROLE pt_nobody;
CREATE ROLE pt_producer IN ROLE pgtopic_producer;
CREATE ROLE pt_consumer IN ROLE pgtopic_consumer;
CREATE ROLE pt_topic_admin IN ROLE pgtopic_consumer;
CREATE ROLE pt_admin IN ROLE pgtopic_admin;
SELECT pgtopic.grant_topic('secret', 'pt_producer', 'produce');
SELECT pgtopic.grant_topic('secret', 'pt_consumer', 'consume');
SELECT pgtopic.grant_topic('secret', 'pt_topic_admin', 'admin');
SELECT pgtopic.grant_topic('secret', 'pt_consumer', 'consume');  -- again: nothing changes
SELECT pgtopic.grant_topic('secret', 'pt_consumer', 'read');

-- after CREATE EXTENSION, nothing of pgtopic is executable or readable without a grant
SELECT count(*) AS executable FROM pg_proc p
 WHERE p.pronamespace = 'pgtopic'::regnamespace AND has_function_privilege('pt_nobody', p.oid, 'EXECUTE');
SELECT count(*) AS readable FROM pg_class c
 WHERE c.relnamespace IN ('pgtopic'::regnamespace, 'pgtopic_data'::regnamespace) AND c.relkind IN ('r', 'p', 'v', 'S')
   AND has_table_privilege('pt_nobody', c.oid, 'SELECT');
SELECT has_schema_privilege('pt_nobody', 'pgtopic', 'USAGE') AS usage_pgtopic,
       has_schema_privilege('pt_producer', 'pgtopic_data', 'USAGE') AS usage_storage;

CREATE FUNCTION pg_temp.try_as(role text, query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', role);
        EXECUTE query;
        RAISE EXCEPTION USING MESSAGE = '__ok__';
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM = '__ok__' THEN
            RETURN 'ok';
        END IF;
        RETURN SQLSTATE;
    END;
END $$;

SELECT format('SELECT count(*) FROM pgtopic_data.topic_%s', topic_id) AS storage_read,
       format('UPDATE pgtopic.catalog_offsets SET committed_offset = 0 WHERE group_id IN (SELECT group_id FROM pgtopic.catalog_groups WHERE topic_id = %s)', topic_id) AS catalog_write
  FROM pgtopic.catalog_topics WHERE topic = 'secret' \gset

CREATE TEMP TABLE cases (n int, op text, query text);
INSERT INTO cases VALUES
 (1,  'create_topic',            $q$SELECT pgtopic.create_topic('brand-new')$q$),
 (2,  'alter_topic secret',      $q$SELECT pgtopic.alter_topic('secret', retention => '1 day')$q$),
 (3,  'drop_topic secret',       $q$SELECT pgtopic.drop_topic('secret')$q$),
 (4,  'drop_topic other',        $q$SELECT pgtopic.drop_topic('other')$q$),
 (5,  'grant_topic secret',      $q$SELECT pgtopic.grant_topic('secret', 'pt_nobody', 'consume')$q$),
 (6,  'revoke_topic secret',     $q$SELECT pgtopic.revoke_topic('secret', 'pt_consumer', 'consume')$q$),
 (7,  'produce secret',          $q$SELECT pgtopic.produce('secret', 'x')$q$),
 (8,  'produce_batch secret',    $q$SELECT pgtopic.produce_batch('secret', ARRAY['x'])$q$),
 (9,  'produce other',           $q$SELECT pgtopic.produce('other', 'x')$q$),
 (10, 'fetch secret',            $q$SELECT pgtopic.fetch('secret', 0, 0)$q$),
 (11, 'fetch other',             $q$SELECT pgtopic.fetch('other', 0, 0)$q$),
 (12, 'consume+commit+leave',    $q$SELECT pgtopic.consume('secret', 'g'); SELECT pgtopic.commit('secret', 'g'); SELECT pgtopic.leave('secret', 'g')$q$),
 (13, 'consume other',           $q$SELECT pgtopic.consume('other', 'g')$q$),
 (14, 'commit other group',      $q$SELECT pgtopic.commit('other', 'g')$q$),
 (15, 'seek secret',             $q$SELECT pgtopic.seek('secret', 'g', 0, 0, create_group => true)$q$),
 (16, 'seek other',              $q$SELECT pgtopic.seek('other', 'g', 0, 0, create_group => true)$q$),
 (17, 'seek_to_beginning other', $q$SELECT pgtopic.seek_to_beginning('other', 'g', create_group => true)$q$),
 (18, 'partition_offsets secret',$q$SELECT pgtopic.partition_offsets('secret')$q$),
 (19, 'read storage directly',   :'storage_read'),
 (20, 'write catalog directly',  :'catalog_write'),
 (21, 'read catalog directly',   $q$SELECT * FROM pgtopic.catalog_grants$q$),
 (22, 'views',                   $q$SELECT * FROM pgtopic.topics, pgtopic.consumer_lag$q$);

SELECT n, op,
       pg_temp.try_as('pt_nobody', query) AS nobody,
       pg_temp.try_as('pt_producer', query) AS producer,
       pg_temp.try_as('pt_consumer', query) AS consumer,
       pg_temp.try_as('pt_topic_admin', query) AS topic_admin,
       pg_temp.try_as('pt_admin', query) AS admin
  FROM cases ORDER BY n;

-- the views show each role only the topics it has a right on
CREATE FUNCTION pg_temp.sees(role text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    SELECT string_agg(topic, ',' ORDER BY topic) INTO result FROM pgtopic.topics WHERE topic IN ('secret', 'other');
    RESET ROLE;
    RETURN result;
END $$;
SELECT r AS role, pg_temp.sees(r) FROM unnest(ARRAY['pt_producer', 'pt_consumer', 'pt_topic_admin', 'pt_admin']) AS r;

-- denials name the missing right, or the extension role to grant (PostgreSQL's own denials of
-- pgtopic's schema, functions and views get a HINT)
SET ROLE pt_nobody;
SELECT pgtopic.produce('secret', 'x');
SELECT * FROM pgtopic.topics;
RESET ROLE;
SET ROLE pt_consumer;
SELECT pgtopic.produce('secret', 'x');
SELECT pgtopic.produce_batch('secret', ARRAY['x']);
SELECT pgtopic.create_topic('nope');
SELECT * FROM pgtopic.catalog_topics;
SELECT pgtopic.partition_offsets('other');
SELECT pgtopic.fetch('other', 0, 0);
RESET ROLE;
SET ROLE pt_producer;
SELECT pgtopic.create_topic('mine');
RESET ROLE;

-- revoke takes the right away
SELECT pgtopic.revoke_topic('secret', 'pt_consumer', 'consume');
SELECT pg_temp.try_as('pt_consumer', $q$SELECT pgtopic.fetch('secret', 0, 0)$q$);
SELECT pgtopic.revoke_topic('secret', 'pt_consumer', 'consume');

-- has_topic_privilege answers for the current role
SET ROLE pt_producer;
SELECT pgtopic.has_topic_privilege('secret', 'produce') AS produce, pgtopic.has_topic_privilege('secret', 'consume') AS consume;
RESET ROLE;

-- metadata privacy: nothing about a topic reaches a role without a right on it
SELECT count(*) FROM pgtopic.consume('other', 'other-group');  -- a group of 'other' (as the superuser)
CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.000001 AS $$
BEGIN
    RAISE NOTICE 'leaked: %', $1;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.leak(text) TO PUBLIC;
SET ROLE pt_producer;
-- security-barrier views: a cheap leaky function in WHERE sees only the rows the view lets through
SELECT count(*) FROM pgtopic.consumer_lag WHERE pg_temp.leak(group_name || '@' || topic);
SELECT count(*) FROM pgtopic.group_members WHERE pg_temp.leak(group_name || '@' || topic);
SELECT count(*) FROM pgtopic.topics WHERE pg_temp.leak(topic);
SELECT count(*) FROM pgtopic.partitions WHERE pg_temp.leak(topic);
SELECT count(*) FROM pgtopic.lso_holders WHERE pg_temp.leak(topic);
-- sizes only of topics the role may use (through the views: the helpers they call are not
-- reachable directly); existence is not revealed by has_topic_privilege
SELECT topic, bytes > 0 AS has_bytes FROM pgtopic.topics WHERE topic IN ('other', 'secret') ORDER BY 1;
SELECT pgtopic_internal._storage_bytes('other', NULL);
SELECT count(*) FROM pgtopic_internal._members();
SELECT pgtopic.has_topic_privilege('other', 'consume') AS existing, pgtopic.has_topic_privilege('no-such-topic', 'consume') AS missing;
RESET ROLE;
-- the storage tables carry no topic names (pg_class and its comments are readable by everyone)
SELECT count(*) AS named_storage FROM pg_class c
 WHERE c.relnamespace = 'pgtopic_data'::regnamespace
   AND (obj_description(c.oid, 'pg_class') LIKE '%secret%' OR obj_description(c.oid, 'pg_class') LIKE '%other%');
SELECT pgtopic.leave('other', 'other-group');

SELECT pgtopic.drop_topic('secret');
SELECT pgtopic.drop_topic('other');
SELECT count(*) FROM pgtopic.catalog_grants;
DROP ROLE pt_nobody, pt_producer, pt_consumer, pt_topic_admin, pt_admin;
