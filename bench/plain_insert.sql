-- Physical limit: one row of pgtopic's shape per transaction into a plain table with its primary key.
INSERT INTO {{TABLE}} ("partition", value) VALUES (0, :payload::bytea);
