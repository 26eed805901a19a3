-- Physical limit: the batch's rows into the plain table through COPY (server-side file, text format).
COPY {{TABLE}} ("partition", value) FROM '{{FILE}}';
