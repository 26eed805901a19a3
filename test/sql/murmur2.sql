-- Kafka's murmur2 and default partitioner, checked against the Java client's published vectors
-- (org.apache.kafka.common.utils.UtilsTest.testMurmur2).
SELECT input, pgtopic.murmur2(convert_to(input, 'UTF8')) AS murmur2, expected,
       pgtopic.murmur2(convert_to(input, 'UTF8')) = expected AS ok
  FROM (VALUES ('21', -973932308), ('foobar', -790332482), ('a-little-bit-long-string', -985981536),
               ('a-little-bit-longer-string', -1486304829), ('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971),
               ('abc', 479470107)) AS v(input, expected);

-- the partition: toPositive(murmur2) % partitions
SELECT pgtopic.key_partition('foobar', 7) = ((-790332482 & x'7fffffff'::int) % 7) AS ok;
SELECT pgtopic.key_partition('21', 1);
-- non-ASCII keys are hashed as UTF-8, like a Java client's String key
SELECT pgtopic.murmur2(convert_to('ключ', 'UTF8')) = pgtopic.murmur2('\xd0bad0bbd18ed187'::bytea) AS utf8;
