-- pgtopic 0.2.0 -> 0.3.0. Each section belongs to one change; keep them in the order they landed.
\echo Use "ALTER EXTENSION pgtopic UPDATE TO '0.3.0'" to load this file. \quit

-- Metadata privacy: security-barrier views, sizes only for roles with a right on the topic,
-- storage tables without the topic's name in their comment.
-- (_create_topic stops writing that comment: it is replaced, with the durable bounds, further down)

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

------------------------------------------------------------------------------
-- issue 13: durable log end and log start (catalog_partitions), standby reads capped at the
-- primary's WAL-logged last stable offsets, topic DDL refused on standbys with pgtopic's own
-- message, maintenance one topic (and one segment step) at a time, retention without waiting.
------------------------------------------------------------------------------
-- Durable bounds of each topic partition (since 0.3.0). The bigint columns are changed only in
-- place by pgtopic's C code (not transactional, WAL-logged, so standbys and a promoted standby
-- know them; never UPDATE them): offsets below reserved_offset may have been handed out, and a
-- restart resumes at or above it; the log start offset never goes below log_start_offset;
-- stable_offset is the primary's last stable offset as last logged, what a standby reads up to.
CREATE TABLE pgtopic.catalog_partitions (
    topic_id         integer NOT NULL REFERENCES pgtopic.catalog_topics ON DELETE CASCADE,
    "partition"      integer NOT NULL CHECK ("partition" >= 0),
    log_start_offset bigint  NOT NULL DEFAULT 0,
    reserved_offset  bigint  NOT NULL DEFAULT 0,
    stable_offset    bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, "partition")
);
COMMENT ON TABLE pgtopic.catalog_partitions IS 'pgtopic catalog: durable offset bounds per topic partition';
SELECT pg_catalog.pg_extension_config_dump('pgtopic.catalog_partitions', '');
-- Existing partitions get their row (a restart then resumes above what they hold, as before,
-- and reserves from there on).
INSERT INTO pgtopic.catalog_partitions (topic_id, "partition")
SELECT t.topic_id, p FROM pgtopic.catalog_topics t, generate_series(0, t.partitions - 1) AS p;

-- Internal: raises a partition's recorded log start offset (retention, after dropping a segment).
CREATE FUNCTION pgtopic._raise_log_start(topic_id integer, "partition" integer, log_start bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_raise_log_start' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

-- Internal: retention's locks for DROP TABLE of a segment: the partition table (waiting at most
-- 200 ms), then the segment (never waiting; false when a reader or producer holds it).
CREATE FUNCTION pgtopic._lock_for_drop(partition_table regclass, segment regclass) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pgtopic_lock_for_drop' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

-- Internal: WAL-logs the last stable offsets that moved (what hot standbys may read up to).
CREATE FUNCTION pgtopic._log_stable_offsets() RETURNS integer
    AS 'MODULE_PATHNAME', 'pgtopic_log_stable_offsets' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

-- Topic DDL on a hot standby: pgtopic's own message and hint, not "read-only transaction".
CREATE FUNCTION pgtopic._refuse_on_standby(what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot % on a standby', what
            USING ERRCODE = 'read_only_sql_transaction',
                  DETAIL = 'This server is in recovery (a hot standby): topics are read-only here.',
                  HINT = 'Connect to the primary (for example with target_session_attrs=read-write).';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION pgtopic._create_partition(topic_id integer, "partition" integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pgtopic.catalog_partitions (topic_id, "partition") VALUES (topic_id, "partition");
    EXECUTE format('CREATE TABLE pgtopic_data.%I PARTITION OF pgtopic_data.%I FOR VALUES IN (%s) PARTITION BY RANGE (msg_offset)',
                   format('topic_%s_p%s', topic_id, "partition"), format('topic_%s', topic_id), "partition");
    PERFORM pgtopic._create_segment(topic_id, "partition", 0);
END $$;

CREATE OR REPLACE FUNCTION pgtopic._create_topic(topic text, partitions integer,
                                      retention interval, retention_bytes bigint,
                                      segment_size bigint, max_message_bytes integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id   integer;
    v_size bigint := coalesce(segment_size, current_setting('pgtopic.default_segment_size')::bigint);
BEGIN
    PERFORM pgtopic._refuse_on_standby('create a topic');
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
            created_at  timestamptz,
            key_bytes   bytea,
            header_keys text[],
            header_values bytea[],
            PRIMARY KEY ("partition", msg_offset)
        ) PARTITION BY LIST ("partition")$ddl$, format('topic_%s', v_id));

    FOR p IN 0 .. partitions - 1 LOOP
        PERFORM pgtopic._create_partition(v_id, p);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION pgtopic._alter_topic(topic text, partitions integer,
                                     retention interval, retention_bytes bigint, max_message_bytes integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row pgtopic.catalog_topics;
BEGIN
    PERFORM pgtopic._refuse_on_standby('alter a topic');
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

CREATE OR REPLACE FUNCTION pgtopic._drop_topic(topic text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id      integer;
    v_storage regclass;
BEGIN
    PERFORM pgtopic._refuse_on_standby('drop a topic');
    PERFORM pgtopic._check_topic_name(topic);
    SELECT t.topic_id INTO v_id FROM pgtopic.catalog_topics t WHERE t.topic = _drop_topic.topic FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
    END IF;
    v_storage := to_regclass(format('pgtopic_data.%I', format('topic_%s', v_id)));
    IF v_storage IS NOT NULL THEN
        -- DROP TABLE waits for in-flight producers and readers of the topic (they hold locks on it).
        EXECUTE format('DROP TABLE pgtopic_data.%I', format('topic_%s', v_id));
        PERFORM pgtopic._forget_topic(v_storage);
    END IF;
    DELETE FROM pgtopic.catalog_topics t WHERE t.topic_id = v_id;
END $$;

-- Maintenance of one topic (the worker runs each topic in a transaction of its own):
--  * creates the segment holding each partition's high watermark and the one after it, if missing;
--  * drops the oldest segments while they are past retention (time: the newest message of the
--    segment is older than retention; size: the partition is larger than retention_bytes).
--    Only whole segments below the last stable offset are dropped, never the active one, and
--    never with DELETE; the recorded log start offset moves above each dropped segment.
-- Each creation and each drop is a subtransaction: a lock that is not free (a reader or
-- producer holds the segment, a creator holds the partition for longer than 200 ms) skips that
-- step until the next pass. A drop never waits for a segment's lock, so retention never waits
-- for (or deadlocks with) a reader in a transaction block.
CREATE FUNCTION pgtopic._maintain_topic(topic_id integer)
RETURNS TABLE (action text, topic text, "partition" integer, segment bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t        record;
    o        record;
    s        record;
    v_bytes  bigint;
    v_newest timestamptz;
    v_drop   boolean;
BEGIN
    SELECT * INTO t FROM pgtopic.catalog_topics c WHERE c.topic_id = _maintain_topic.topic_id;
    IF NOT FOUND THEN
        RETURN;  -- dropped meanwhile
    END IF;
    FOR o IN SELECT * FROM pgtopic.partition_offsets(t.topic) LOOP
        FOR k IN (o.high_watermark / t.segment_size) .. (o.high_watermark / t.segment_size) + 1 LOOP
            IF to_regclass(format('pgtopic_data.%I', format('topic_%s_p%s_s%s', t.topic_id, o."partition", k))) IS NULL THEN
                BEGIN
                    PERFORM pgtopic._create_segment(t.topic_id, o."partition", k);
                EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                    CONTINUE;  -- another creator holds the partition: next pass
                END;
                RETURN QUERY SELECT 'create segment', t.topic, o."partition", k::bigint;
            END IF;
        END LOOP;

        CONTINUE WHEN t.retention IS NULL AND t.retention_bytes IS NULL;
        SELECT coalesce(sum(pg_total_relation_size(g.relid)), 0) INTO v_bytes
          FROM pgtopic._segments(t.topic_id, o."partition") g;
        FOR s IN SELECT * FROM pgtopic._segments(t.topic_id, o."partition") LOOP
            EXIT WHEN (s.segment + 1) * t.segment_size > o.last_stable_offset;  -- active or not yet stable
            v_drop := t.retention_bytes IS NOT NULL AND v_bytes > t.retention_bytes;
            IF NOT v_drop AND t.retention IS NOT NULL THEN
                -- the newest message of a segment is (nearly always) its last offset: an index probe
                BEGIN
                    EXECUTE format('SELECT produced_at FROM %s ORDER BY "partition" DESC, msg_offset DESC LIMIT 1', s.relid)
                       INTO v_newest;
                EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                    EXIT;
                END;
                v_drop := v_newest IS NULL OR v_newest < now() - t.retention;
            END IF;
            EXIT WHEN NOT v_drop;
            v_bytes := v_bytes - pg_total_relation_size(s.relid);
            BEGIN
                -- the partition table and the segment (DROP locks both), never waiting for a reader
                EXIT WHEN NOT pgtopic._lock_for_drop(
                    format('pgtopic_data.%I', format('topic_%s_p%s', t.topic_id, o."partition"))::regclass, s.relid);
                EXECUTE format('DROP TABLE %s', s.relid);
                PERFORM pgtopic._raise_log_start(t.topic_id, o."partition", (s.segment + 1) * t.segment_size);
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                EXIT;  -- a reader or producer holds it: next pass
            END;
            RETURN QUERY SELECT 'drop segment', t.topic, o."partition", s.segment;
        END LOOP;
    END LOOP;
END $$;

-- One maintenance pass over every topic of this database; the maintenance worker does the same
-- every pgtopic.maintenance_interval (one transaction per topic), and it may be called by hand.
-- Returns what it did. Each topic is a subtransaction: a topic whose locks are busy is skipped
-- until the next pass, the others are maintained. Ends by WAL-logging the last stable offsets
-- that moved (what hot standbys read up to).
CREATE OR REPLACE FUNCTION pgtopic.run_maintenance()
RETURNS TABLE (action text, topic text, "partition" integer, segment bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id integer;
BEGIN
    FOR v_id IN SELECT t.topic_id FROM pgtopic.catalog_topics t ORDER BY t.topic_id LOOP
        BEGIN
            RETURN QUERY SELECT * FROM pgtopic._maintain_topic(v_id);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            NULL;  -- next pass
        END;
    END LOOP;
    PERFORM pgtopic._log_stable_offsets();
END $$;

REVOKE ALL ON FUNCTION pgtopic._raise_log_start(integer, integer, bigint), pgtopic._log_stable_offsets(),
                       pgtopic._lock_for_drop(regclass, regclass),
                       pgtopic._refuse_on_standby(text), pgtopic._maintain_topic(integer) FROM PUBLIC;
REVOKE ALL ON TABLE pgtopic.catalog_partitions FROM PUBLIC;

------------------------------------------------------------------------------
-- Consumer groups: a bounded group coordinator in shared memory (issue 12). Partition ownership
-- moves from advisory locks to the coordinator: _members() returns each member's partitions,
-- and the views read them from there.
------------------------------------------------------------------------------
DROP VIEW pgtopic.consumer_lag;
DROP VIEW pgtopic.group_members;
DROP FUNCTION pgtopic._members();

-- Internal: this database's group members from the group coordinator's shared memory, with the
-- partitions each owns.
CREATE FUNCTION pgtopic._members()
    RETURNS TABLE (pid integer, group_id integer, joined_at timestamptz, last_poll timestamptz,
                   member_id text, kind text, partitions integer[], generation bigint,
                   lease_expiry timestamptz, client_id text)
    AS 'MODULE_PATHNAME', 'pgtopic_members' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Advisory locks of pgtopic's key spaces (pg_locks.objsubid): 29697 segment DDL, 29698 a session
-- member's anchor (classid = group_id, objid = its member slot). Partition ownership lives in the
-- group coordinator's shared memory (pgtopic._members()).
CREATE VIEW pgtopic.group_members WITH (security_barrier) AS
SELECT g.group_name, t.topic, m.pid, a.application_name, a.client_addr, m.joined_at, m.last_poll,
       m.partitions, m.member_id, m.kind, m.generation, m.lease_expiry
  FROM pgtopic._members() m
  JOIN pgtopic.catalog_groups g ON g.group_id = m.group_id
  JOIN pgtopic._visible_topics t ON t.topic_id = g.topic_id
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = m.pid;

-- The owning member's columns have group_members' names (pid, application_name, ...).
CREATE VIEW pgtopic.consumer_lag WITH (security_barrier) AS
SELECT g.group_name, t.topic, o."partition", c.committed_offset, o.log_start_offset, o.high_watermark,
       o.last_stable_offset,
       greatest(o.last_stable_offset - greatest(coalesce(c.committed_offset, o.log_start_offset), o.log_start_offset), 0) AS lag,
       c.committed_at, m.pid, a.application_name, a.client_addr, m.joined_at, m.last_poll, m.member_id
  FROM pgtopic.catalog_groups g
  JOIN pgtopic._visible_topics t ON t.topic_id = g.topic_id
  CROSS JOIN LATERAL pgtopic.partition_offsets(t.topic) o
  LEFT JOIN pgtopic.catalog_offsets c ON c.group_id = g.group_id AND c."partition" = o."partition"
  LEFT JOIN (SELECT mm.*, p.p FROM pgtopic._members() mm, unnest(mm.partitions) AS p(p)) m
         ON m.group_id = g.group_id AND m.p = o."partition"
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = m.pid;

GRANT SELECT ON pgtopic.consumer_lag, pgtopic.group_members TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;
REVOKE ALL ON FUNCTION pgtopic._members() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic._members() TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;

------------------------------------------------------------------------------
-- Consumer groups: member_id leases (connection poolers) on consume, commit, leave and seek;
-- consume_text and consume_json in C, returning an unconvertible value as NULL with error and
-- raw instead of failing the call (issue 12).
------------------------------------------------------------------------------
DROP FUNCTION pgtopic.consume_text(text, text, integer, integer);
DROP FUNCTION pgtopic.consume_json(text, text, integer, integer);
DROP FUNCTION pgtopic.consume(text, text, integer, integer);
DROP FUNCTION pgtopic.commit(text, text);
DROP FUNCTION pgtopic.leave(text, text);
DROP FUNCTION pgtopic.seek(text, text, integer, bigint);

CREATE FUNCTION pgtopic.consume(topic text, group_name text, max_messages integer DEFAULT 100,
                                wait_ms integer DEFAULT 0, member_id text DEFAULT NULL)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value bytea,
                   headers jsonb, produced_at timestamptz)
    AS 'MODULE_PATHNAME', 'pgtopic_consume' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.commit(topic text, group_name text, member_id text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.leave(topic text, group_name text, member_id text DEFAULT NULL) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pgtopic_leave' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.seek(topic text, group_name text, "partition" integer, to_offset bigint,
                             member_id text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_seek' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- consume with the value as text (in the database encoding) / as jsonb: no casts needed in SQL.
-- A value that does not convert comes back as value NULL, with the reason in error and the
-- bytes in raw (a poison message never blocks the group, and is never dropped silently).
CREATE FUNCTION pgtopic.consume_text(topic text, group_name text, max_messages integer DEFAULT 100,
                                     wait_ms integer DEFAULT 0, member_id text DEFAULT NULL)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value text,
                   headers jsonb, produced_at timestamptz, error text, raw bytea)
    AS 'MODULE_PATHNAME', 'pgtopic_consume_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.consume_json(topic text, group_name text, max_messages integer DEFAULT 100,
                                     wait_ms integer DEFAULT 0, member_id text DEFAULT NULL)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value jsonb,
                   headers jsonb, produced_at timestamptz, error text, raw bytea)
    AS 'MODULE_PATHNAME', 'pgtopic_consume_json' LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION pgtopic.consume(text, text, integer, integer, text), pgtopic.commit(text, text, text),
    pgtopic.leave(text, text, text), pgtopic.seek(text, text, integer, bigint, text),
    pgtopic.consume_text(text, text, integer, integer, text), pgtopic.consume_json(text, text, integer, integer, text)
   FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.consume(text, text, integer, integer, text), pgtopic.commit(text, text, text),
    pgtopic.leave(text, text, text), pgtopic.seek(text, text, integer, bigint, text),
    pgtopic.consume_text(text, text, integer, integer, text), pgtopic.consume_json(text, text, integer, integer, text)
   TO pgtopic_admin, pgtopic_consumer;

------------------------------------------------------------------------------
-- Consumer groups: joining never waits for another session's uncommitted group row (issue 12):
-- catalog_offsets loses its foreign key to catalog_groups; a trigger deletes a group's offsets.
------------------------------------------------------------------------------
ALTER TABLE pgtopic.catalog_offsets DROP CONSTRAINT catalog_offsets_group_id_fkey;
-- Offsets go with their group: a trigger, not a foreign key, so a member may write offsets of a
-- group whose row another member's open transaction is still creating (joining never waits for
-- another session's transaction).
CREATE FUNCTION pgtopic._group_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pgtopic.catalog_offsets o WHERE o.group_id = OLD.group_id;
    RETURN OLD;
END $$;
CREATE TRIGGER group_deleted AFTER DELETE ON pgtopic.catalog_groups
    FOR EACH ROW EXECUTE FUNCTION pgtopic._group_deleted();
REVOKE ALL ON FUNCTION pgtopic._group_deleted() FROM PUBLIC;

-- fetch gains wait_ms (a long poll, as consume's) and text / jsonb variants.
DROP FUNCTION pgtopic.fetch(text, integer, bigint, integer);
CREATE FUNCTION pgtopic.fetch(topic text, "partition" integer, from_offset bigint,
                              max_messages integer DEFAULT 100, wait_ms integer DEFAULT 0)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value bytea,
                   headers jsonb, produced_at timestamptz)
    AS 'MODULE_PATHNAME', 'pgtopic_fetch' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- fetch with the value as text / jsonb; a value that does not convert is NULL, with the reason
-- in error and the stored bytes in raw (as consume_text / consume_json).
CREATE FUNCTION pgtopic.fetch_text(topic text, "partition" integer, from_offset bigint,
                                   max_messages integer DEFAULT 100, wait_ms integer DEFAULT 0)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value text,
                   headers jsonb, produced_at timestamptz, error text, raw bytea)
    AS 'MODULE_PATHNAME', 'pgtopic_fetch_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.fetch_json(topic text, "partition" integer, from_offset bigint,
                                   max_messages integer DEFAULT 100, wait_ms integer DEFAULT 0)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key text, value jsonb,
                   headers jsonb, produced_at timestamptz, error text, raw bytea)
    AS 'MODULE_PATHNAME', 'pgtopic_fetch_json' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION pgtopic.fetch(text, integer, bigint, integer, integer),
    pgtopic.fetch_text(text, integer, bigint, integer, integer), pgtopic.fetch_json(text, integer, bigint, integer, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.fetch(text, integer, bigint, integer, integer),
    pgtopic.fetch_text(text, integer, bigint, integer, integer), pgtopic.fetch_json(text, integer, bigint, integer, integer)
   TO pgtopic_admin, pgtopic_consumer;

-- The maintenance worker's counters (src/maintenance.cpp).
-- The maintenance worker: its pid (NULL when it is not running) and what it did since the server
-- started (passes over every topic, steps that failed with the last error, segments created and
-- dropped, notifications sent). last_error may name any topic: for pgtopic_admin only.
CREATE FUNCTION pgtopic.maintenance_status()
    RETURNS TABLE (pid integer, started_at timestamptz, passes bigint, failures bigint,
                   last_pass_at timestamptz, last_failure_at timestamptz, last_error text,
                   segments_created bigint, segments_dropped bigint, notifications bigint)
    AS 'MODULE_PATHNAME', 'pgtopic_maintenance_status' LANGUAGE C VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION pgtopic.maintenance_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.maintenance_status() TO pgtopic_admin;

-- The helpers the views call leave the schema users browse: nobody has USAGE on pgtopic_internal,
-- so they are reached only through the views (src/sizes.cpp, group_coordinator.cpp, offsets.cpp).
CREATE SCHEMA pgtopic_internal;
COMMENT ON SCHEMA pgtopic_internal IS 'pgtopic internal helpers of the views; not for direct use';
REVOKE ALL ON SCHEMA pgtopic_internal FROM PUBLIC;
ALTER FUNCTION pgtopic._members() SET SCHEMA pgtopic_internal;
ALTER FUNCTION pgtopic._inflight() SET SCHEMA pgtopic_internal;
ALTER FUNCTION pgtopic._storage_bytes(text, integer) SET SCHEMA pgtopic_internal;

-- seek on a group that does not exist is an error unless create_group (it used to create the
-- group silently); seek_to_* are C functions (no granted internal helper).
DROP FUNCTION pgtopic.seek_to_beginning(text, text, integer);
DROP FUNCTION pgtopic.seek_to_end(text, text, integer);
DROP FUNCTION pgtopic.seek_to_time(text, text, timestamptz, integer);
DROP FUNCTION pgtopic._seek_each(text, text, integer, text, timestamptz);
DROP FUNCTION pgtopic.seek(text, text, integer, bigint, text);
CREATE FUNCTION pgtopic.seek(topic text, group_name text, "partition" integer, to_offset bigint,
                             member_id text DEFAULT NULL, create_group boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_seek' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION pgtopic.seek_to_beginning(topic text, group_name text, "partition" integer DEFAULT NULL,
                                          create_group boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_seek_to_beginning' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION pgtopic.seek_to_end(topic text, group_name text, "partition" integer DEFAULT NULL,
                                    create_group boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_seek_to_end' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION pgtopic.seek_to_time(topic text, group_name text, ts timestamptz, "partition" integer DEFAULT NULL,
                                     create_group boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pgtopic_seek_to_time' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION pgtopic.seek(text, text, integer, bigint, text, boolean),
    pgtopic.seek_to_beginning(text, text, integer, boolean), pgtopic.seek_to_end(text, text, integer, boolean),
    pgtopic.seek_to_time(text, text, timestamptz, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.seek(text, text, integer, bigint, text, boolean),
    pgtopic.seek_to_beginning(text, text, integer, boolean), pgtopic.seek_to_end(text, text, integer, boolean),
    pgtopic.seek_to_time(text, text, timestamptz, integer, boolean) TO pgtopic_admin, pgtopic_consumer;

-- Idempotent Kafka producers (since 0.3.0; docs/kafka.md, "Idempotent producers"). Producer ids
-- come from the sequence (never reused, also after a restart, a crash or a failover); the
-- listener keeps, per producer id and topic partition, the epoch, the last sequence and the last
-- 5 batches as (first sequence, last sequence, base offset) triples, oldest first, written in the
-- transaction of the records they describe. Rows idle for pgtopic.kafka_producer_expiration are
-- deleted by the listener; a dropped topic's rows go with it (trigger below).
CREATE SEQUENCE pgtopic.kafka_producer_id_seq AS bigint;
CREATE TABLE pgtopic.catalog_kafka_producers (
    producer_id    bigint      NOT NULL,
    topic_id       integer     NOT NULL,
    "partition"    integer     NOT NULL,
    producer_epoch smallint    NOT NULL,
    last_sequence  integer     NOT NULL,
    batches        bigint[]    NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (producer_id, topic_id, "partition")
);
COMMENT ON TABLE pgtopic.catalog_kafka_producers IS 'pgtopic catalog: idempotent Kafka producers'' sequence state per partition';
SELECT pg_catalog.pg_extension_config_dump('pgtopic.kafka_producer_id_seq', '');

CREATE FUNCTION pgtopic._topic_producers_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pgtopic.catalog_kafka_producers p WHERE p.topic_id = OLD.topic_id;
    RETURN OLD;
END $$;
CREATE TRIGGER topic_producers_deleted AFTER DELETE ON pgtopic.catalog_topics
    FOR EACH ROW EXECUTE FUNCTION pgtopic._topic_producers_deleted();
REVOKE ALL ON TABLE pgtopic.catalog_kafka_producers FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgtopic.kafka_producer_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtopic._topic_producers_deleted() FROM PUBLIC;

-- Storage fidelity (since 0.3.0; docs/sql-api.md, "Records"): every topic's table gains the
-- columns that keep what a Kafka client sent byte for byte. Nullable columns without defaults:
-- no table is rewritten, existing messages keep their text key and jsonb headers.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT topic_id FROM pgtopic.catalog_topics ORDER BY topic_id LOOP
        EXECUTE format('ALTER TABLE pgtopic_data.%I ADD COLUMN created_at timestamptz, ADD COLUMN key_bytes bytea, '
                       'ADD COLUMN header_keys text[], ADD COLUMN header_values bytea[]', format('topic_%s', t.topic_id));
    END LOOP;
END $$;

-- Messages as Kafka clients send them (since 0.3.0): a binary key, headers in order with
-- duplicates and null values (header_keys[i], header_values[i]), the client's timestamp.
-- Keyed by the key's bytes (Kafka's murmur2 of them); docs/sql-api.md, "Records".
CREATE FUNCTION pgtopic.key_partition(key bytea, partitions integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'pgtopic_key_partition_bytes' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION pgtopic.produce_record(topic text, value bytea, key bytea DEFAULT NULL,
                                       header_keys text[] DEFAULT NULL, header_values bytea[] DEFAULT NULL,
                                       "partition" integer DEFAULT NULL, created_at timestamptz DEFAULT NULL)
    RETURNS TABLE ("partition" integer, msg_offset bigint)
    AS 'MODULE_PATHNAME', 'pgtopic_produce_record' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.fetch_records(topic text, "partition" integer, from_offset bigint,
                                      max_messages integer DEFAULT 100, wait_ms integer DEFAULT 0)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key bytea, value bytea,
                   header_keys text[], header_values bytea[], created_at timestamptz, produced_at timestamptz)
    AS 'MODULE_PATHNAME', 'pgtopic_fetch_records' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION pgtopic.consume_records(topic text, group_name text, max_messages integer DEFAULT 100,
                                        wait_ms integer DEFAULT 0, member_id text DEFAULT NULL)
    RETURNS TABLE ("partition" integer, msg_offset bigint, key bytea, value bytea,
                   header_keys text[], header_values bytea[], created_at timestamptz, produced_at timestamptz)
    AS 'MODULE_PATHNAME', 'pgtopic_consume_records' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION pgtopic.key_partition(bytea, integer),
    pgtopic.produce_record(text, bytea, bytea, text[], bytea[], integer, timestamptz),
    pgtopic.fetch_records(text, integer, bigint, integer, integer),
    pgtopic.consume_records(text, text, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtopic.key_partition(bytea, integer) TO pgtopic_admin, pgtopic_producer, pgtopic_consumer;
GRANT EXECUTE ON FUNCTION pgtopic.produce_record(text, bytea, bytea, text[], bytea[], integer, timestamptz)
   TO pgtopic_admin, pgtopic_producer;
GRANT EXECUTE ON FUNCTION pgtopic.fetch_records(text, integer, bigint, integer, integer),
    pgtopic.consume_records(text, text, integer, integer, text)
   TO pgtopic_admin, pgtopic_consumer;
