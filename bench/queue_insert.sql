-- Baseline, naive SKIP LOCKED queue (PGMQ / pg-boss pattern): one row per transaction.
INSERT INTO {{QUEUE}} (payload) VALUES (:payload::bytea);
