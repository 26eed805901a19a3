#!/bin/sh
# kcat against pgtopic's Kafka listener (docs/kafka.md): produce keyed messages with headers
# over the Kafka protocol, read them with SQL at the same partitions and offsets, produce with
# SQL and read that with kcat.
#
#   examples/kcat/kcat-demo.sh [BROKER] [PSQL-CONNINFO]
#   e.g. examples/kcat/kcat-demo.sh 127.0.0.1:9092 "host=/tmp/pgtopic-demo port=54329 dbname=postgres user=postgres"
#
# The server needs pgtopic.kafka_listen_addresses, pgtopic.kafka_role and that role's produce and
# consume rights on the topic (docs/kafka.md, "Turning the listener on"); the topic is created
# here with SQL if it does not exist (as the connecting SQL user).
set -eu
BROKER=${1:-127.0.0.1:9092}
CONNINFO=${2:-dbname=postgres}
TOPIC=${TOPIC:-kcat_demo}

psql -X -q -v ON_ERROR_STOP=1 "$CONNINFO" -c "SELECT pgtopic.create_topic('$TOPIC', 2, if_not_exists => true)" >/dev/null

echo "== kcat -P: two keyed messages with a header, to partition 1, acks=all"
printf 'alice:{"item":"book"}\nbob:{"item":"pen"}\n' |
    kcat -b "$BROKER" -P -t "$TOPIC" -p 1 -K: -H source=kcat -X acks=all

echo "== SQL sees them (same partition and offsets)"
psql -X "$CONNINFO" -c "SELECT \"partition\", msg_offset, key, convert_from(value, 'UTF8') AS value, headers
                          FROM pgtopic.fetch('$TOPIC', 1, 0, 100) ORDER BY msg_offset"

echo "== SQL produces one; kcat -C reads both partitions from the beginning, CRCs checked"
psql -X -q "$CONNINFO" -c "SELECT pgtopic.produce('$TOPIC', '{\"item\":\"mug\"}'::text, 'carol', partition => 0)" >/dev/null
kcat -b "$BROKER" -C -t "$TOPIC" -e -q -o beginning -X check.crcs=true -f 'partition %p offset %o key %k: %s (headers: %h)\n'
