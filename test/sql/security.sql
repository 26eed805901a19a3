-- Hostile objects: functions and operators that shadow built-ins, in public and pg_temp, with
-- public searched before pg_catalog. pgtopic must neither call them nor change behaviour.
-- And every function that runs SQL pins search_path (there is no SECURITY DEFINER function).
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'pgtopic'::regnamespace AND (p.prosecdef OR l.lanname IN ('plpgsql', 'sql'))
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);
SELECT count(*) AS security_definer FROM pg_proc p WHERE p.pronamespace = 'pgtopic'::regnamespace AND p.prosecdef;

CREATE ROLE pt_user IN ROLE pgtopic_producer, pgtopic_consumer;
GRANT CREATE ON SCHEMA public TO pt_user;
SELECT pgtopic.create_topic('guarded', 2);
SELECT pgtopic.grant_topic('guarded', 'pt_user', 'produce');
SELECT pgtopic.grant_topic('guarded', 'pt_user', 'consume');

CREATE TABLE public.hostile_calls (what text);
GRANT INSERT, SELECT ON public.hostile_calls TO PUBLIC;
SET ROLE pt_user;
CREATE FUNCTION public.texteq_evil(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO public.hostile_calls VALUES ('='); RETURN true; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.texteq_evil);
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE sql AS
    $$ INSERT INTO public.hostile_calls VALUES ('format'); SELECT 'pwned'::text $$;
CREATE FUNCTION public.format(text, integer, integer) RETURNS text LANGUAGE sql AS
    $$ INSERT INTO public.hostile_calls VALUES ('format'); SELECT 'pwned'::text $$;
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE sql AS
    $$ INSERT INTO public.hostile_calls VALUES ('to_regclass'); SELECT NULL::regclass $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO public.hostile_calls VALUES ('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO public.hostile_calls VALUES ('unnest'); END $$;
CREATE FUNCTION public.convert_from(bytea, name) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO public.hostile_calls VALUES ('convert_from'); RETURN 'pwned'; END $$;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
SET search_path = public, pg_temp, pg_catalog;

SELECT * FROM pgtopic.produce('guarded', 'one', key => 'k');
SELECT pgtopic.produce_batch('guarded', ARRAY['two', 'three'], ARRAY['k', 'k']);
SELECT "partition", msg_offset, value FROM pgtopic.consume_text('guarded', 'grp', 10) ORDER BY 1, 2;
SELECT pgtopic.commit('guarded', 'grp');
SELECT "partition", msg_offset FROM pgtopic.consume('guarded', 'grp', 10);
SELECT pgtopic.seek_to_beginning('guarded', 'grp');
SELECT count(*) FROM pgtopic.consume('guarded', 'grp', 10);
SELECT pgtopic.seek_to_time('guarded', 'grp', '2000-01-01');
SELECT count(*) FROM pgtopic.fetch('guarded', pgtopic.key_partition('k', 2), 0);
-- (this test's own comparisons name pg_catalog's operator: with public first, a bare = is the hostile one)
SELECT topic, partitions FROM pgtopic.topics WHERE topic OPERATOR(pg_catalog.=) 'guarded';
SELECT group_name, "partition", committed_offset FROM pgtopic.consumer_lag WHERE topic OPERATOR(pg_catalog.=) 'guarded' ORDER BY 2;
-- the rights did not change either
SELECT pgtopic.drop_topic('guarded');
SELECT pgtopic.leave('guarded', 'grp');
RESET ROLE;
RESET search_path;

-- the hostile objects were never called
SELECT what, count(*) FROM public.hostile_calls GROUP BY 1 ORDER BY 1;
-- and as a superuser with the same search_path, DDL is not hijacked either
SET search_path = public, pg_temp, pg_catalog;
SELECT pgtopic.alter_topic('guarded', partitions => 3);
SELECT pgtopic.drop_topic('guarded');
RESET search_path;
SELECT what, count(*) FROM public.hostile_calls GROUP BY 1 ORDER BY 1;

DROP TABLE public.hostile_calls;
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.texteq_evil(text, text), public.format(text, text), public.format(text, integer, integer),
              public.to_regclass(text), public.now(), public.unnest(anyarray), public.convert_from(bytea, name),
              pg_temp.now();
REVOKE CREATE ON SCHEMA public FROM pt_user;
DROP ROLE pt_user;
