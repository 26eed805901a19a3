-- pgtopic metrics for Prometheus: the functions monitoring/queries.yaml reads.
--
-- Run once by a superuser in the database that holds pgtopic (psql -f monitoring/setup.sql;
-- safe to run again, e.g. after ALTER EXTENSION pgtopic UPDATE). The functions are SECURITY
-- DEFINER (as in Debian's prometheus-postgres-exporter README.Debian): the exporter's role needs
-- nothing of pgtopic's own roles, only membership in pg_monitor, and sees every topic, read-only.
--
--   CREATE ROLE prometheus LOGIN;  GRANT pg_monitor TO prometheus;
--   prometheus-postgres-exporter --extend.query-path=/path/to/monitoring/queries.yaml
--
-- Each function returns only numbers and names; none of them reads a message.

CREATE SCHEMA IF NOT EXISTS pgtopic_metrics;
REVOKE ALL ON SCHEMA pgtopic_metrics FROM PUBLIC;
GRANT USAGE ON SCHEMA pgtopic_metrics TO pg_monitor;

-- Per group, topic and partition: messages below the last stable offset not yet committed.
CREATE OR REPLACE FUNCTION pgtopic_metrics.consumer_lag()
RETURNS TABLE (group_name text, topic text, "partition" text, lag bigint, committed_offset bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.group_name, l.topic, l."partition"::text, l.lag, coalesce(l.committed_offset, l.log_start_offset)
      FROM pgtopic.consumer_lag l
$$;

-- Per partition: the log's start and end (high watermark), the last stable offset, bytes, and the
-- open producer transactions holding the last stable offset back (pgtopic.lso_holders): how many,
-- the age of the oldest one (0 if none) and how many offsets readers cannot see yet.
CREATE OR REPLACE FUNCTION pgtopic_metrics.partitions()
RETURNS TABLE (topic text, "partition" text, log_start_offset bigint, high_watermark bigint,
               last_stable_offset bigint, bytes bigint, lso_holders bigint,
               lso_oldest_holder_seconds double precision, lso_held_back_offsets bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.topic, p."partition"::text, p.log_start_offset, p.high_watermark, p.last_stable_offset, p.bytes,
           count(h.pid),
           coalesce(extract(epoch FROM clock_timestamp() - min(h.xact_start)), 0)::double precision,
           p.high_watermark - p.last_stable_offset
      FROM pgtopic.partitions p
      LEFT JOIN pgtopic.lso_holders h ON h.topic = p.topic AND h."partition" = p."partition"
     GROUP BY p.topic, p."partition", p.log_start_offset, p.high_watermark, p.last_stable_offset, p.bytes
$$;

-- Per topic: partitions, bytes and segments (the offset-range tables under the partitions,
-- including the ones the maintenance worker creates ahead of need).
CREATE OR REPLACE FUNCTION pgtopic_metrics.topics()
RETURNS TABLE (topic text, partitions integer, bytes bigint, segments bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.topic, t.partitions, v.bytes,
           (SELECT count(*) FROM generate_series(0, t.partitions - 1) AS p, pg_inherits i
             WHERE i.inhparent = to_regclass(format('pgtopic_data.%I', format('topic_%s_p%s', t.topic_id, p))))
      FROM pgtopic.catalog_topics t JOIN pgtopic.topics v ON v.topic = t.topic
$$;

-- Per group and topic: live members, partitions they own, and the longest time a member has not
-- polled (0 without members; pgtopic.max_poll_interval ends a member silent for longer).
CREATE OR REPLACE FUNCTION pgtopic_metrics.groups()
RETURNS TABLE (group_name text, topic text, members bigint, owned_partitions bigint,
               max_seconds_since_poll double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT g.group_name, g.topic, count(m.group_name), coalesce(sum(cardinality(m.partitions)), 0),
           coalesce(extract(epoch FROM clock_timestamp() - min(m.last_poll)), 0)::double precision
      FROM (SELECT DISTINCT l.group_name, l.topic FROM pgtopic.consumer_lag l) g
      LEFT JOIN pgtopic.group_members m ON m.group_name = g.group_name AND m.topic = g.topic
     GROUP BY g.group_name, g.topic
$$;

-- The maintenance worker (retention, segments ahead of need, NOTIFY): whether it runs, whether it
-- is inside a pass (it reports 'active' for a pass and 'idle' after one; a pass that fails stays
-- 'active' until the next one starts), for how long, the pass interval, and its counters since
-- the server started (pgtopic.maintenance_status(): passes over every topic, steps that failed,
-- segments it created and dropped, notifications; the error text is not exported).
DROP FUNCTION IF EXISTS pgtopic_metrics.worker();  -- its columns grew in 0.3.0
CREATE FUNCTION pgtopic_metrics.worker()
RETURNS TABLE (running integer, active integer, state_seconds double precision,
               maintenance_interval_seconds double precision, in_recovery integer,
               passes_total bigint, failures_total bigint, seconds_since_last_pass double precision,
               segments_created_total bigint, segments_dropped_total bigint, notifications_total bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(a.pid)::integer,
           count(a.pid) FILTER (WHERE a.state = 'active')::integer,
           coalesce(extract(epoch FROM clock_timestamp() - min(a.state_change)), 0)::double precision,
           extract(epoch FROM current_setting('pgtopic.maintenance_interval')::interval)::double precision,
           pg_is_in_recovery()::integer,
           max(s.passes), max(s.failures),
           coalesce(extract(epoch FROM clock_timestamp() - max(coalesce(s.last_pass_at, s.started_at))), -1)::double precision,
           max(s.segments_created), max(s.segments_dropped), max(s.notifications)
      FROM (SELECT 1) one
      LEFT JOIN pg_stat_activity a ON a.backend_type = 'pgtopic maintenance'
      CROSS JOIN pgtopic.maintenance_status() s
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtopic_metrics FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgtopic_metrics TO pg_monitor;
