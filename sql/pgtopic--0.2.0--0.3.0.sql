-- pgtopic 0.2.0 -> 0.3.0. Each section belongs to one change; keep them in the order they landed.
\echo Use "ALTER EXTENSION pgtopic UPDATE TO '0.3.0'" to load this file. \quit


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
CREATE VIEW pgtopic.group_members AS
SELECT g.group_name, t.topic, m.pid, a.application_name, a.client_addr, m.joined_at, m.last_poll,
       m.partitions, m.member_id, m.kind, m.generation, m.lease_expiry
  FROM pgtopic._members() m
  JOIN pgtopic.catalog_groups g ON g.group_id = m.group_id
  JOIN pgtopic._visible_topics t ON t.topic_id = g.topic_id
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = m.pid;

CREATE VIEW pgtopic.consumer_lag AS
SELECT g.group_name, t.topic, o."partition", c.committed_offset, o.log_start_offset, o.high_watermark,
       o.last_stable_offset,
       greatest(o.last_stable_offset - greatest(coalesce(c.committed_offset, o.log_start_offset), o.log_start_offset), 0) AS lag,
       c.committed_at, m.pid AS owner_pid, a.application_name AS owner_application, a.client_addr AS owner_address,
       m.joined_at AS owner_since, m.last_poll AS owner_last_poll, m.member_id AS owner_member_id
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
