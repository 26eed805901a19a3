-- Database seed for test/fuzz/sqlsmith-run (run as a superuser in a throwaway database that has
-- CREATE EXTENSION pgtopic). It makes sqlsmith spend its queries on pgtopic:
--
--  * a non-superuser role pgtopic_fuzzer with the privileges a client has (USAGE on schema pgtopic,
--    EXECUTE on its functions, SELECT on its views and catalogs, pgtopic_producer/pgtopic_consumer
--    when those roles exist, produce/consume rights on most topics and admin on one);
--  * topics with messages (small segments, toasted values, tombstones, headers) and groups with
--    committed offsets, so the views hand sqlsmith real topic and group names;
--  * schema fuzz: tables of interesting values (sqlsmith's own constants are only small integers
--    and NULL), an outbox table whose trigger produces every row it gets, and plain-valued
--    wrappers around pgtopic's set-returning functions (sqlsmith never calls set-returning
--    functions itself: it loads routines with "not proretset");
--  * schema fuzz_catalog: a pg_proc view that sqlsmith reads instead of pg_catalog.pg_proc when
--    the role's search_path starts with fuzz_catalog (sqlsmith's catalog query names pg_proc
--    unqualified). It keeps pgtopic's and fuzz's functions and ~160 pg_catalog functions over the
--    types pgtopic takes, so about one routine call in five goes to pgtopic.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- ---- topics, messages, groups (as the superuser) ------------------------------------------
SELECT pgtopic.create_topic('orders', 3);
SELECT pgtopic.create_topic('events', 1, segment_size => 10);
SELECT pgtopic.create_topic('logs', 8, retention => interval '1 hour', retention_bytes => 1000000, segment_size => 50);
SELECT pgtopic.create_topic('empty', 2);
SELECT pgtopic.create_topic('a.b_c-9', 1);

SELECT pgtopic.produce_batch('orders', array_agg(convert_to('order ' || i, 'UTF8')), array_agg('customer-' || (i % 7)),
                             array_agg(CASE WHEN i % 3 = 0 THEN jsonb_build_object('n', i) END))
  FROM generate_series(1, 200) AS i;
SELECT pgtopic.produce_batch('events', array_agg(('{"e": ' || i || ', "s": "ünïcødé 😀"}')::jsonb)) FROM generate_series(1, 95) AS i;
SELECT pgtopic.produce_batch('logs', array_agg(repeat('log line ' || i, 1 + i % 20)), array_agg(md5(i::text)))
  FROM generate_series(1, 400) AS i;
SELECT pgtopic.produce('orders', NULL::bytea, key => 'customer-1');                 -- a tombstone
SELECT pgtopic.produce('events', repeat('big', 100000), key => 'toasted');           -- TOASTed value
SELECT pgtopic.produce('a.b_c-9', '{"k": [1, 2, {"x": null}]}'::jsonb, headers => '{"trace": "t-1"}');

-- groups with committed offsets (the session's group locks go when this session ends)
SELECT count(*) FROM pgtopic.consume('orders', 'billing', 50);
SELECT pgtopic.commit('orders', 'billing');
SELECT count(*) FROM pgtopic.consume('orders', 'analytics', 10);
SELECT pgtopic.commit('orders', 'analytics');
SELECT count(*) FROM pgtopic.consume('events', 'ünïcødé group', 20);
SELECT pgtopic.commit('events', 'ünïcødé group');
SELECT count(*) FROM pgtopic.consume('logs', 'billing', 100);
SELECT pgtopic.commit('logs', 'billing');

-- ---- the role -----------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgtopic_fuzzer') THEN
        CREATE ROLE pgtopic_fuzzer LOGIN;
    END IF;
    -- The roles pgtopic may define for clients, when they exist.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgtopic_producer') THEN
        GRANT pgtopic_producer TO pgtopic_fuzzer;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgtopic_consumer') THEN
        GRANT pgtopic_consumer TO pgtopic_fuzzer;
    ELSE
        -- Without a consumer role, consume() writes the group catalogs as the caller: grant that,
        -- or every group call would stop at 42501 and sqlsmith would never reach the group code.
        GRANT INSERT, UPDATE ON pgtopic.catalog_groups, pgtopic.catalog_offsets TO pgtopic_fuzzer;
        GRANT USAGE ON SEQUENCE pgtopic.group_id_seq TO pgtopic_fuzzer;
        -- ... and pgtopic's internal look-ups of the first and last stored offsets run as the
        -- caller too (SELECT min/max(msg_offset) FROM pgtopic_data.topic_<id>_p<n>).
        GRANT USAGE ON SCHEMA pgtopic_data TO pgtopic_fuzzer;
        GRANT SELECT ON ALL TABLES IN SCHEMA pgtopic_data TO pgtopic_fuzzer;
    END IF;
END $$;
GRANT USAGE ON SCHEMA pgtopic TO pgtopic_fuzzer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgtopic TO pgtopic_fuzzer;
GRANT SELECT ON ALL TABLES IN SCHEMA pgtopic TO pgtopic_fuzzer;   -- views and catalogs: names to use
-- Per-topic rights, where pgtopic has them: produce and consume on four topics, admin on one
-- (sqlsmith rolls every statement back, so it can alter and drop it), none on 'empty'.
DO $$
DECLARE
    t text;
BEGIN
    IF to_regprocedure('pgtopic.grant_topic(text, text, text)') IS NOT NULL THEN
        FOREACH t IN ARRAY ARRAY['orders', 'events', 'logs', 'a.b_c-9'] LOOP
            PERFORM pgtopic.grant_topic(t, 'pgtopic_fuzzer', 'produce');
            PERFORM pgtopic.grant_topic(t, 'pgtopic_fuzzer', 'consume');
        END LOOP;
        PERFORM pgtopic.grant_topic('logs', 'pgtopic_fuzzer', 'admin');
    END IF;
END $$;

-- ---- schema fuzz: values, an outbox, wrappers ----------------------------------------------
CREATE SCHEMA fuzz;
GRANT USAGE ON SCHEMA fuzz TO pgtopic_fuzzer;

-- Names: real topics and groups, and near misses.
CREATE TABLE fuzz.names (topic text, group_name text, "partition" integer);
INSERT INTO fuzz.names VALUES
    ('orders', 'billing', 0), ('orders', 'analytics', 2), ('events', 'ünïcødé group', 0), ('logs', 'billing', 7),
    ('empty', 'nobody', 1), ('a.b_c-9', 'g', 0), ('orders', 'fresh', 3), ('Orders', 'billing', -1),
    ('nope', 'x', 0), ('', '', 0), ('.', '..', NULL), (NULL, 'billing', 0), ('orders', NULL, 1),
    (repeat('t', 249), repeat('g', 249), 0), (repeat('t', 250), repeat('g', 250), 0),
    ('orders ', E'tab\tgroup', 0), ('örders', E'\u0001ctl', 0), ('orders;drop', '%s%n%x', 2147483647),
    ('events', repeat('é', 125), -2147483648), ('logs', '😀', 4);

-- Values of every type pgtopic takes: edges, unicode, sizes, NULLs, odd arrays.
CREATE TABLE fuzz.vals (
    id integer, t text, b bytea, j jsonb, i4 integer, i8 bigint, ta text[], ba bytea[], ja jsonb[],
    ia integer[], ts timestamptz, iv interval);
INSERT INTO fuzz.vals
SELECT i,
       (ARRAY['', ' ', 'plain', 'ünïcødé', '日本語のテキスト', '😀🎉', E'\u202Eevil', E'a\u0301', E'\uFFFF', E'\U0010FFFF',
              E'line\nbreak', '%s%n%d', 'Robert''); DROP TABLE x;--', repeat('x', 5000), repeat('ab', 600000),
              '{"not": "json"', 'null', '\\x00', NULL])[1 + i % 19],
       (ARRAY['\x'::bytea, '\x00', '\xff00fe', convert_to('plain', 'UTF8'), decode(repeat('ab', 300000), 'hex'),
              decode(repeat('cd', 1200000), 'hex'), '\xc328', NULL])[1 + i % 8],
       (ARRAY['{}'::jsonb, '{"a": 1}', '[]', '[1, 2]', '1', '"s"', 'null', 'true', '{"trace": "😀", "n": null}',
              '{"a": {"b": {"c": {"d": [[[[]]]]}}}}', jsonb_build_object('big', repeat('j', 70000)), NULL])[1 + i % 12],
       (ARRAY[0, 1, -1, 2, 3, 7, 8, 100, 2147483647, -2147483648, 1000, NULL])[1 + i % 12],
       (ARRAY[0, 1, -1, 5, 99, 1000, 9223372036854775807, -9223372036854775808, 4294967296, 2147483648, NULL]::bigint[])[1 + i % 11],
       (SELECT v FROM (VALUES (0, '{}'::text[]), (1, '{a}'), (2, '{a,b,c}'), (3, '{NULL}'), (4, '{k1,NULL,k3}'),
                              (5, '{{a,b},{c,d}}'), (6, '[5:7]={x,y,z}'), (7, NULL)) AS x(k, v) WHERE k = i % 8),
       (SELECT v FROM (VALUES (0, '{}'::bytea[]), (1, '{"\\x01"}'), (2, '{"\\x01","\\x02","\\x03"}'), (3, '{NULL,"\\x00"}'),
                              (4, '{{"\\x01"},{"\\x02"}}'), (5, NULL)) AS x(k, v) WHERE k = i % 6),
       (SELECT v FROM (VALUES (0, '{}'::jsonb[]), (1, '{"{}"}'), (2, '{"{\"a\": 1}","[]","1"}'), (3, '{NULL}'),
                              (4, '{"{}","{}","{}"}'), (5, '{{"{}"},{"{}"}}'), (6, NULL)) AS x(k, v) WHERE k = i % 7),
       (SELECT v FROM (VALUES (0, '{}'::int[]), (1, '{0}'), (2, '{0,1,2}'), (3, '{-1}'), (4, '{2147483647}'), (5, NULL)) AS x(k, v)
         WHERE k = i % 6),
       (ARRAY[now(), 'infinity', '-infinity', '1970-01-01', '294276-12-31', NULL]::timestamptz[])[1 + i % 6],
       (ARRAY[interval '1 hour', '-1 day', '0', '1 microsecond', '178000000 years', NULL])[1 + i % 6]
  FROM generate_series(0, 59) AS i;

-- Every row inserted or updated here is produced (in the inserting transaction).
CREATE TABLE fuzz.outbox (topic text, value text, key text, headers jsonb, "partition" integer);
CREATE FUNCTION fuzz.outbox_produce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgtopic.produce(NEW.topic, NEW.value, NEW.key, NEW.headers, NEW."partition");
    RETURN NEW;
END $$;
CREATE TRIGGER produce AFTER INSERT OR UPDATE ON fuzz.outbox FOR EACH ROW EXECUTE FUNCTION fuzz.outbox_produce();
INSERT INTO fuzz.outbox VALUES ('orders', 'from the outbox', 'customer-2', NULL, NULL);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA fuzz TO pgtopic_fuzzer;

-- Set-returning functions as plain values (sqlsmith calls only functions that return one value).
CREATE FUNCTION fuzz.produce_bytea(topic text, value bytea, key text, headers jsonb, "partition" integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT msg_offset FROM pgtopic.produce(topic, value, key, headers, "partition") $$;
CREATE FUNCTION fuzz.produce_text(topic text, value text, key text, headers jsonb, "partition" integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT msg_offset FROM pgtopic.produce(topic, value, key, headers, "partition") $$;
CREATE FUNCTION fuzz.produce_jsonb(topic text, value jsonb, key text, headers jsonb, "partition" integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT msg_offset FROM pgtopic.produce(topic, value, key, headers, "partition") $$;
CREATE FUNCTION fuzz.produce_partition(topic text, value text, key text) RETURNS integer
    LANGUAGE sql AS $$ SELECT p."partition" FROM pgtopic.produce(topic, value, key) AS p $$;
CREATE FUNCTION fuzz.fetch_count(topic text, "partition" integer, from_offset bigint, max_messages integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic.fetch(topic, "partition", from_offset, max_messages) $$;
CREATE FUNCTION fuzz.fetch_values(topic text, "partition" integer, from_offset bigint, max_messages integer) RETURNS bytea[]
    LANGUAGE sql AS $$ SELECT array_agg(value ORDER BY msg_offset) FROM pgtopic.fetch(topic, "partition", from_offset, max_messages) $$;
CREATE FUNCTION fuzz.fetch_keys(topic text, "partition" integer, from_offset bigint, max_messages integer) RETURNS text[]
    LANGUAGE sql AS $$ SELECT array_agg(key ORDER BY msg_offset) FROM pgtopic.fetch(topic, "partition", from_offset, max_messages) $$;
CREATE FUNCTION fuzz.fetch_headers(topic text, "partition" integer, from_offset bigint, max_messages integer) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_agg(headers) FROM pgtopic.fetch(topic, "partition", from_offset, max_messages) $$;
CREATE FUNCTION fuzz.fetch_last(topic text, "partition" integer, from_offset bigint, max_messages integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT max(msg_offset) FROM pgtopic.fetch(topic, "partition", from_offset, max_messages) $$;
CREATE FUNCTION fuzz.consume_count(topic text, group_name text, max_messages integer, wait_ms integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic.consume(topic, group_name, max_messages, wait_ms) $$;
CREATE FUNCTION fuzz.consume_values(topic text, group_name text, max_messages integer) RETURNS bytea[]
    LANGUAGE sql AS $$ SELECT array_agg(value) FROM pgtopic.consume(topic, group_name, max_messages) $$;
CREATE FUNCTION fuzz.consume_text(topic text, group_name text, max_messages integer, wait_ms integer) RETURNS text
    LANGUAGE sql AS $$ SELECT string_agg(value, ',') FROM pgtopic.consume_text(topic, group_name, max_messages, wait_ms) $$;
CREATE FUNCTION fuzz.consume_json(topic text, group_name text, max_messages integer, wait_ms integer) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_agg(value) FROM pgtopic.consume_json(topic, group_name, max_messages, wait_ms) $$;
CREATE FUNCTION fuzz.high_watermark(topic text, "partition" integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT o.high_watermark FROM pgtopic.partition_offsets(topic) AS o WHERE o."partition" = $2 $$;
CREATE FUNCTION fuzz.last_stable_offset(topic text, "partition" integer) RETURNS bigint
    LANGUAGE sql AS $$ SELECT o.last_stable_offset FROM pgtopic.partition_offsets(topic) AS o WHERE o."partition" = $2 $$;
CREATE FUNCTION fuzz.partition_count(topic text) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic.partition_offsets(topic) $$;
CREATE FUNCTION fuzz.maintenance_actions() RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic.run_maintenance() $$;
CREATE FUNCTION fuzz.inflight() RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic_internal._inflight() $$;
CREATE FUNCTION fuzz.members() RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM pgtopic_internal._members() $$;
-- Parameterless ones: two calls in three that sqlsmith makes are to parameterless routines.
CREATE SEQUENCE fuzz.pick;
GRANT USAGE ON SEQUENCE fuzz.pick TO pgtopic_fuzzer;
CREATE FUNCTION fuzz.any_topic() RETURNS text
    LANGUAGE sql AS $$ SELECT topic FROM fuzz.names ORDER BY 1 NULLS FIRST OFFSET nextval('fuzz.pick') % 20 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_group() RETURNS text
    LANGUAGE sql AS $$ SELECT group_name FROM fuzz.names ORDER BY 1 NULLS FIRST OFFSET nextval('fuzz.pick') % 20 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_text() RETURNS text
    LANGUAGE sql AS $$ SELECT t FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_bytea() RETURNS bytea
    LANGUAGE sql AS $$ SELECT b FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_jsonb() RETURNS jsonb
    LANGUAGE sql AS $$ SELECT j FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_int8() RETURNS bigint
    LANGUAGE sql AS $$ SELECT i8 FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_text_array() RETURNS text[]
    LANGUAGE sql AS $$ SELECT ta FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_bytea_array() RETURNS bytea[]
    LANGUAGE sql AS $$ SELECT ba FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_jsonb_array() RETURNS jsonb[]
    LANGUAGE sql AS $$ SELECT ja FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.any_int4() RETURNS integer
    LANGUAGE sql AS $$ SELECT i4 FROM fuzz.vals ORDER BY id OFFSET nextval('fuzz.pick') % 60 LIMIT 1 $$;
CREATE FUNCTION fuzz.produce_some() RETURNS bigint
    LANGUAGE sql AS $$ SELECT fuzz.produce_text(fuzz.any_topic(), fuzz.any_text(), fuzz.any_text(), fuzz.any_jsonb(), NULL) $$;
CREATE FUNCTION fuzz.consume_some() RETURNS bigint
    LANGUAGE sql AS $$ SELECT fuzz.consume_count(fuzz.any_topic(), fuzz.any_group(), 10, 0) $$;
CREATE FUNCTION fuzz.produce_batch_some() RETURNS bigint
    LANGUAGE sql AS $$ SELECT pgtopic.produce_batch(fuzz.any_topic(), fuzz.any_text_array(), fuzz.any_text_array(), fuzz.any_jsonb_array()) $$;
CREATE FUNCTION fuzz.produce_batch_bytes_some() RETURNS bigint
    LANGUAGE sql AS $$ SELECT pgtopic.produce_batch(fuzz.any_topic(), fuzz.any_bytea_array(), fuzz.any_text_array()) $$;
CREATE FUNCTION fuzz.fetch_some() RETURNS bigint
    LANGUAGE sql AS $$ SELECT fuzz.fetch_count(fuzz.any_topic(), fuzz.any_int4(), fuzz.any_int8(), fuzz.any_int4()) $$;
CREATE FUNCTION fuzz.seek_some() RETURNS void
    LANGUAGE sql AS $$ SELECT pgtopic.seek(fuzz.any_topic(), fuzz.any_group(), fuzz.any_int4(), fuzz.any_int8()) $$;
CREATE FUNCTION fuzz.seek_to_some() RETURNS void
    LANGUAGE sql AS $$ SELECT CASE nextval('fuzz.pick') % 3
                              WHEN 0 THEN pgtopic.seek_to_beginning(fuzz.any_topic(), fuzz.any_group(), fuzz.any_int4())
                              WHEN 1 THEN pgtopic.seek_to_end(fuzz.any_topic(), fuzz.any_group())
                              ELSE pgtopic.seek_to_time(fuzz.any_topic(), fuzz.any_group(), now() - interval '1 minute') END $$;
CREATE FUNCTION fuzz.commit_some() RETURNS void
    LANGUAGE sql AS $$ SELECT pgtopic.commit(fuzz.any_topic(), fuzz.any_group()) $$;
CREATE FUNCTION fuzz.leave_some() RETURNS boolean
    LANGUAGE sql AS $$ SELECT pgtopic.leave(fuzz.any_topic(), fuzz.any_group()) $$;
CREATE FUNCTION fuzz.key_partition_some() RETURNS integer
    LANGUAGE sql AS $$ SELECT pgtopic.key_partition(fuzz.any_text(), fuzz.any_int4()) $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fuzz TO pgtopic_fuzzer;

-- ---- what sqlsmith sees as pg_proc ---------------------------------------------------------
CREATE SCHEMA fuzz_catalog;
GRANT USAGE ON SCHEMA fuzz_catalog TO pgtopic_fuzzer;
CREATE VIEW fuzz_catalog.pg_proc AS
SELECT p.*
  FROM pg_catalog.pg_proc p,
       (SELECT ARRAY['bool', 'int2', 'int4', 'int8', 'text', 'bytea', 'jsonb', 'json', 'timestamptz', 'interval',
                     'void', 'varchar', 'name', 'regclass', 'oid', 'float8', 'numeric', '_text', '_bytea', '_jsonb',
                     '_int4', '_int8', 'bpchar']::regtype[]::oid[] AS types) AS s
 WHERE p.pronamespace IN ('pgtopic'::regnamespace, 'fuzz'::regnamespace)
    OR (p.pronamespace = 'pg_catalog'::regnamespace
        AND p.prorettype = ANY (s.types) AND p.proargtypes::oid[] <@ s.types
        AND p.proname ~ ('^(abs|ascii|btrim|byteacat|char_length|chr|clock_timestamp|convert_from|convert_to|'
                         'current_setting|date_trunc|decode|encode|get_byte|set_byte|int4|int8|int4pl|int4mi|int4mul|'
                         'int4um|int8pl|int8mi|int8mul|int8um|interval_pl|jsonb_array_length|jsonb_build_array|'
                         'jsonb_build_object|jsonb_concat|jsonb_delete|jsonb_extract_path|jsonb_extract_path_text|'
                         'jsonb_insert|jsonb_object|jsonb_pretty|jsonb_set|jsonb_strip_nulls|jsonb_typeof|left|right|'
                         'length|octet_length|lower|upper|lpad|rpad|ltrim|rtrim|make_interval|md5|sha256|sha512|'
                         'normalize|unistr|now|statement_timestamp|overlay|pg_advisory_lock|pg_advisory_lock_shared|'
                         'pg_advisory_unlock|pg_advisory_unlock_all|pg_advisory_xact_lock|pg_try_advisory_lock|'
                         'pg_try_advisory_xact_lock|pg_backend_pid|pg_notify|pg_size_pretty|quote_ident|quote_literal|'
                         'random|setseed|regexp_replace|repeat|replace|reverse|split_part|starts_with|strpos|substr|'
                         'substring|text|textcat|timestamptz_pl_interval|timestamptz_mi_interval|to_char|to_timestamp|'
                         'translate|txid_current|set_config|version)$'));
GRANT SELECT ON fuzz_catalog.pg_proc TO pgtopic_fuzzer;

-- sqlsmith's own session settings (statement_timeout 1s) come on top of these.
ALTER ROLE pgtopic_fuzzer SET search_path = fuzz_catalog, pg_catalog, fuzz, public;
ALTER ROLE pgtopic_fuzzer SET lock_timeout = '500ms';
