-- Physical limit: the batch's rows into the plain table through one multi-row INSERT.
INSERT INTO {{TABLE}} ("partition", value) VALUES {{ROWS}};
