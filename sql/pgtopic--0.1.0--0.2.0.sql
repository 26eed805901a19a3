-- pgtopic 0.1.0 -> 0.2.0: per-topic max_message_bytes.
\echo Use "ALTER EXTENSION pgtopic UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE pgtopic.catalog_topics ADD COLUMN max_message_bytes integer CHECK (max_message_bytes > 0);

DROP FUNCTION pgtopic.create_topic(text, integer, interval, bigint, bigint);
DROP FUNCTION pgtopic.alter_topic(text, integer, interval, bigint);
DROP FUNCTION pgtopic._create_topic(text, integer, interval, bigint, bigint);
DROP FUNCTION pgtopic._alter_topic(text, integer, interval, bigint);

CREATE FUNCTION pgtopic.create_topic(topic text, partitions integer DEFAULT 1,
                                     retention interval DEFAULT NULL, retention_bytes bigint DEFAULT NULL,
                                     segment_size bigint DEFAULT NULL, max_message_bytes integer DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_create_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.alter_topic(topic text, partitions integer DEFAULT NULL,
                                    retention interval DEFAULT NULL, retention_bytes bigint DEFAULT NULL,
                                    max_message_bytes integer DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_alter_topic' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic._create_topic(topic text, partitions integer,
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
    EXECUTE format('COMMENT ON TABLE pgtopic_data.%I IS %L', format('topic_%s', v_id), 'pgtopic topic ' || topic);

    FOR p IN 0 .. partitions - 1 LOOP
        PERFORM pgtopic._create_partition(v_id, p);
    END LOOP;
END $$;

CREATE FUNCTION pgtopic._alter_topic(topic text, partitions integer,
                                     retention interval, retention_bytes bigint, max_message_bytes integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row pgtopic.catalog_topics;
BEGIN
    PERFORM pgtopic._check_topic_name(topic);
    SELECT * INTO v_row FROM pgtopic.catalog_topics t WHERE t.topic = _alter_topic.topic FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
    END IF;

    IF partitions IS NOT NULL THEN
        PERFORM pgtopic._check_partitions(partitions);
        IF partitions < v_row.partitions THEN
            RAISE EXCEPTION 'topic "%" has % partitions; partitions can only grow', topic, v_row.partitions
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR p IN v_row.partitions .. partitions - 1 LOOP
            PERFORM pgtopic._create_partition(v_row.topic_id, p);
        END LOOP;
        UPDATE pgtopic.catalog_topics t SET partitions = _alter_topic.partitions WHERE t.topic_id = v_row.topic_id;
    END IF;

    -- retention: NULL keeps the setting, a value <= 0 removes the limit (Kafka's -1).
    IF retention IS NOT NULL THEN
        UPDATE pgtopic.catalog_topics t
           SET retention = CASE WHEN _alter_topic.retention > interval '0' THEN _alter_topic.retention END
         WHERE t.topic_id = v_row.topic_id;
    END IF;
    IF retention_bytes IS NOT NULL THEN
        UPDATE pgtopic.catalog_topics t
           SET retention_bytes = CASE WHEN _alter_topic.retention_bytes > 0 THEN _alter_topic.retention_bytes END
         WHERE t.topic_id = v_row.topic_id;
    END IF;
    IF max_message_bytes IS NOT NULL THEN
        UPDATE pgtopic.catalog_topics t
           SET max_message_bytes = CASE WHEN _alter_topic.max_message_bytes > 0 THEN _alter_topic.max_message_bytes END
         WHERE t.topic_id = v_row.topic_id;
    END IF;
END $$;

-- t.* was expanded when the view was created: take the new column in
CREATE OR REPLACE VIEW pgtopic._visible_topics WITH (security_barrier) AS
SELECT t.* FROM pgtopic.catalog_topics t
 WHERE pgtopic.has_topic_privilege(t.topic, 'consume') OR pgtopic.has_topic_privilege(t.topic, 'produce');

CREATE OR REPLACE VIEW pgtopic.topics AS
SELECT t.topic, t.partitions, t.retention, t.retention_bytes, t.segment_size, t.created_at,
       pgtopic._storage_bytes('topic_' || t.topic_id) AS bytes, t.max_message_bytes
  FROM pgtopic._visible_topics t;

REVOKE ALL ON FUNCTION pgtopic.create_topic(text, integer, interval, bigint, bigint, integer),
                       pgtopic.alter_topic(text, integer, interval, bigint, integer),
                       pgtopic._create_topic(text, integer, interval, bigint, bigint, integer),
                       pgtopic._alter_topic(text, integer, interval, bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.create_topic(text, integer, interval, bigint, bigint, integer),
                          pgtopic.alter_topic(text, integer, interval, bigint, integer)
   TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;

-- Sessions cache catalog_topics rows (produce looks a topic up by name on every call); this
-- trigger invalidates every session's cache when the table changes.
CREATE FUNCTION pgtopic._topics_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pgtopic_topics_changed' LANGUAGE C;
CREATE TRIGGER topics_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgtopic.catalog_topics
    FOR EACH STATEMENT EXECUTE FUNCTION pgtopic._topics_changed();
REVOKE ALL ON FUNCTION pgtopic._topics_changed() FROM PUBLIC;
