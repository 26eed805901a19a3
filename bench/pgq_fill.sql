-- Backlog fill for PgQ: 1000 events per transaction, then a tick (as pgqd would), so that
-- batches hold about 1000 events.
SELECT count(pgq.insert_event('{{QUEUE}}', 'msg', v)) FROM bench_payloads WHERE size = {{SIZE}};
SELECT pgq.ticker('{{QUEUE}}');
