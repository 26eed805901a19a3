-- Baseline, PgQ: one transaction inserting the batch's events ({{ARRAY}}: text[] literal).
SELECT count(pgq.insert_event('{{QUEUE}}', 'msg', v)) FROM unnest('{{ARRAY}}'::text[]) AS v;
