-- Baseline, SKIP LOCKED queue: one multi-row INSERT per transaction ({{ROWS}}: the batch).
INSERT INTO {{QUEUE}} (payload) VALUES {{ROWS}};
