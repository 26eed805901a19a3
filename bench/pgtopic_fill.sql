-- Backlog fill: produce_batch of 1000 stored payloads per call.
SELECT pgtopic.produce_batch('{{TOPIC}}', (SELECT array_agg(v ORDER BY i) FROM bench_payloads WHERE size = {{SIZE}}));
