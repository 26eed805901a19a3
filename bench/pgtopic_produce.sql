-- pgtopic: one message per transaction (pgbench -M prepared; :payload from pgbench -D).
SELECT * FROM pgtopic.produce('{{TOPIC}}', :payload::bytea);
