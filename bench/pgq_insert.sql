-- Baseline, PgQ (postgresql-15-pgq3): one event per transaction.
SELECT pgq.insert_event('{{QUEUE}}', 'msg', :payload);
