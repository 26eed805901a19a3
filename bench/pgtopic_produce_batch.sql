-- pgtopic: one produce_batch per transaction; {{ARRAY}} is a text[] literal of the batch's
-- values, sent and parsed on every call (pgbench -M simple).
SELECT pgtopic.produce_batch('{{TOPIC}}', '{{ARRAY}}'::text[]);
