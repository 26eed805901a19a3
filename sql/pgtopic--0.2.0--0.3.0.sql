-- pgtopic 0.2.0 -> 0.3.0. Each section belongs to one change; keep them in the order they landed.
\echo Use "ALTER EXTENSION pgtopic UPDATE TO '0.3.0'" to load this file. \quit

-- Metadata privacy: security-barrier views, sizes only for roles with a right on the topic,
-- storage tables without the topic's name in their comment.
CREATE OR REPLACE FUNCTION pgtopic._create_topic(topic text, partitions integer,
                                      retention interval, retention_bytes bigint,
                                      segment_size bigint, max_message_bytes integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id   integer;
    v_size bigint := coalesce(segment_size, current_setting('pgtopic.default_segment_size')::bigint);
BEGIN
    PERFORM pgtopic._check_topic_name(topic);
    PERFORM pgtopic._check_partitions(partitions);
    IF retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be positive (or NULL for no time limit)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention_bytes <= 0 THEN
        RAISE EXCEPTION 'retention_bytes must be positive (or NULL for no size limit)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_size < 1 OR v_size > 1099511627776 THEN
        RAISE EXCEPTION 'segment_size must be between 1 and 2^40' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_message_bytes <= 0 THEN
        RAISE EXCEPTION 'max_message_bytes must be positive (or NULL for pgtopic.max_message_bytes)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM pgtopic.catalog_topics t WHERE t.topic = _create_topic.topic) THEN
        RAISE EXCEPTION 'topic "%" already exists', topic USING ERRCODE = 'duplicate_object';
    END IF;

    INSERT INTO pgtopic.catalog_topics (topic, partitions, segment_size, retention, retention_bytes, max_message_bytes)
    VALUES (topic, partitions, v_size, retention, retention_bytes, max_message_bytes)
    RETURNING topic_id INTO v_id;

    EXECUTE format($ddl$
        CREATE TABLE pgtopic_data.%I (
            "partition" integer     NOT NULL,
            msg_offset  bigint      NOT NULL,
            key         text,
            value       bytea,
            headers     jsonb,
            produced_at timestamptz NOT NULL,
            PRIMARY KEY ("partition", msg_offset)
        ) PARTITION BY LIST ("partition")$ddl$, format('topic_%s', v_id));

    FOR p IN 0 .. partitions - 1 LOOP
        PERFORM pgtopic._create_partition(v_id, p);
    END LOOP;
END $$;

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT topic_id FROM pgtopic.catalog_topics LOOP
        IF to_regclass(format('pgtopic_data.%I', 'topic_' || t.topic_id)) IS NOT NULL THEN
            EXECUTE format('COMMENT ON TABLE pgtopic_data.%I IS NULL', 'topic_' || t.topic_id);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION pgtopic._storage_bytes(topic text, "partition" integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pgtopic_storage_bytes' LANGUAGE C STABLE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION pgtopic._storage_bytes(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic._storage_bytes(text, integer) TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;
CREATE OR REPLACE VIEW pgtopic.topics WITH (security_barrier) AS
SELECT t.topic, t.partitions, t.retention, t.retention_bytes, t.segment_size, t.created_at,
       pgtopic._storage_bytes(t.topic, NULL) AS bytes, t.max_message_bytes
  FROM pgtopic._visible_topics t;
CREATE OR REPLACE VIEW pgtopic.partitions WITH (security_barrier) AS
SELECT t.topic, o."partition", o.log_start_offset, o.high_watermark, o.last_stable_offset,
       pgtopic._storage_bytes(t.topic, o."partition") AS bytes
  FROM pgtopic._visible_topics t, LATERAL pgtopic.partition_offsets(t.topic) o;
DROP FUNCTION pgtopic._storage_bytes(text);
ALTER VIEW pgtopic.group_members SET (security_barrier);
ALTER VIEW pgtopic.consumer_lag SET (security_barrier);
-- (lso_holders also maps storage tables to topics through pg_class: to_regclass needed USAGE on
-- pgtopic_data, so the view failed for every role but the superuser)
CREATE OR REPLACE VIEW pgtopic.lso_holders WITH (security_barrier) AS
SELECT t.topic, i."partition", i.first_offset, i.pid, a.application_name, a.client_addr, a.xact_start,
       a.state, a.query
  FROM pgtopic._inflight() i
  JOIN pg_catalog.pg_class c ON c.oid = i.storage
  JOIN pgtopic._visible_topics t ON c.relname = 'topic_' || t.topic_id
   AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pgtopic_data')
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = i.pid;

-- One SQL surface: create_topic(if_not_exists), drop_topic(if_exists), grant/revoke take regrole,
-- produce_batch_offsets returns each message's partition and offset.
DROP FUNCTION pgtopic.create_topic(text, integer, interval, bigint, bigint, integer);
DROP FUNCTION pgtopic.drop_topic(text);
DROP FUNCTION pgtopic.grant_topic(text, text, text);
DROP FUNCTION pgtopic.revoke_topic(text, text, text);
CREATE FUNCTION pgtopic.create_topic(topic text, partitions integer DEFAULT 1,
                                     retention interval DEFAULT NULL, retention_bytes bigint DEFAULT NULL,
                                     segment_size bigint DEFAULT NULL, max_message_bytes integer DEFAULT NULL,
                                     if_not_exists boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_create_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.drop_topic(topic text, if_exists boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_drop_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.grant_topic(topic text, role regrole, privilege text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pgtopic_grant_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.revoke_topic(topic text, role regrole, privilege text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pgtopic_revoke_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- produce_batch that returns each message's partition and offset, in the array's order
-- (ordinality from 1, as WITH ORDINALITY numbers the array).
CREATE FUNCTION pgtopic.produce_batch_offsets(topic text, messages bytea[], keys text[] DEFAULT NULL,
                                              headers jsonb[] DEFAULT NULL)
    RETURNS TABLE (ordinality integer, "partition" integer, msg_offset bigint)
    AS 'MODULE_PATHNAME', 'pgtopic_produce_batch_offsets_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.produce_batch_offsets(topic text, messages text[], keys text[] DEFAULT NULL,
                                              headers jsonb[] DEFAULT NULL)
    RETURNS TABLE (ordinality integer, "partition" integer, msg_offset bigint)
    AS 'MODULE_PATHNAME', 'pgtopic_produce_batch_offsets_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.produce_batch_offsets(topic text, messages jsonb[], keys text[] DEFAULT NULL,
                                              headers jsonb[] DEFAULT NULL)
    RETURNS TABLE (ordinality integer, "partition" integer, msg_offset bigint)
    AS 'MODULE_PATHNAME', 'pgtopic_produce_batch_offsets_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION pgtopic.create_topic(text, integer, interval, bigint, bigint, integer, boolean),
    pgtopic.drop_topic(text, boolean), pgtopic.grant_topic(text, regrole, text), pgtopic.revoke_topic(text, regrole, text),
    pgtopic.produce_batch_offsets(text, bytea[], text[], jsonb[]), pgtopic.produce_batch_offsets(text, text[], text[], jsonb[]),
    pgtopic.produce_batch_offsets(text, jsonb[], text[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    pgtopic.produce_batch_offsets(text, bytea[], text[], jsonb[]), pgtopic.produce_batch_offsets(text, text[], text[], jsonb[]),
    pgtopic.produce_batch_offsets(text, jsonb[], text[], jsonb[])
   TO pgtopic_admin, pgtopic_producer;
GRANT EXECUTE ON FUNCTION
    pgtopic.create_topic(text, integer, interval, bigint, bigint, integer, boolean), pgtopic.drop_topic(text, boolean),
    pgtopic.grant_topic(text, regrole, text), pgtopic.revoke_topic(text, regrole, text)
   TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;

-- Rights cache: catalog_grants changes empty every session's cached rights.
-- Sessions cache their rights on topics too (src/privileges.cpp); the same trigger empties them.
CREATE TRIGGER grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgtopic.catalog_grants
    FOR EACH STATEMENT EXECUTE FUNCTION pgtopic._topics_changed();
