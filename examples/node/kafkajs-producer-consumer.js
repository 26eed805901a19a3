// kafkajs against pgtopic's Kafka listener (docs/kafka.md): create a topic, produce keyed
// messages with a header (acks -1, kafkajs's default murmur2 partitioner: each key lands on the
// partition pgtopic.produce would choose for it), then read every partition back from the
// beginning.
//
//   node examples/node/kafkajs-producer-consumer.js [--broker 127.0.0.1:9092] [--topic kafkajs_demo] [--count 10]
//
// The listener's role (pgtopic.kafka_role) needs pgtopic_admin to create the topic, and produce
// and consume rights on it. pgtopic serves no consumer groups yet (issue 15), so kafkajs's
// kafka.consumer() (which always joins a group) cannot be used: the read below goes through
// kafkajs's own Cluster/Broker layer (ListOffsets + Fetch on assigned partitions, decoded by
// kafkajs). These are kafkajs internals, tested with kafkajs 2.2.4.
'use strict';
const { Kafka, logLevel } = require('kafkajs');
const Cluster = require('kafkajs/src/cluster');
const { createLogger, LEVELS } = require('kafkajs/src/loggers');
const LoggerConsole = require('kafkajs/src/loggers/console');
const socketFactory = require('kafkajs/src/network/socketFactory');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const broker = arg('broker', '127.0.0.1:9092');
const topic = arg('topic', 'kafkajs_demo');
const count = Number(arg('count', '10'));
const kafka = new Kafka({ clientId: 'pgtopic-kafkajs-example', brokers: [broker], logLevel: logLevel.WARN });

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  console.log(created ? `created topic ${topic} (3 partitions)` : `topic ${topic} exists`);
  const partitions = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length;

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++)
    messages.push({ key: `customer-${i % 4}`, value: JSON.stringify({ order: i }), headers: { source: 'kafkajs' } });
  for (const r of await producer.send({ topic, acks: -1, messages }))
    console.log(`produced to partition ${r.partition} from offset ${r.baseOffset}`);
  await producer.disconnect();

  // High watermarks = pgtopic's last stable offsets: nothing above them is readable.
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();

  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.WARN, logCreator: LoggerConsole }),
    socketFactory: socketFactory(), brokers: [broker], clientId: 'pgtopic-kafkajs-example',
    offsets: new Map(), isolationLevel: 1, allowAutoTopicCreation: false,
    connectionTimeout: 3000, requestTimeout: 30000, retry: { retries: 5 }, // no defaults at this level
  });
  await cluster.connect();
  await cluster.addTargetTopic(topic);
  let read = 0;
  for (let partition = 0; partition < partitions; partition++) {
    const end = BigInt(ends.find((o) => o.partition === partition).high);
    const [nodeId] = Object.keys(cluster.findLeaderForPartitions(topic, [partition]));
    const b = await cluster.findBroker({ nodeId });
    let next = 0n;
    while (next < end) {
      const r = await b.fetch({ isolationLevel: 1, maxWaitTime: 100,
        topics: [{ topic, partitions: [{ partition, fetchOffset: next.toString(), maxBytes: 1048576 }] }] });
      const p = r.responses[0].partitions[0];
      if (p.errorCode !== 0) throw new Error(`fetch partition ${partition}: Kafka error ${p.errorCode}`);
      const before = next;
      for (const m of p.messages) {
        if (BigInt(m.offset) < next) continue; // a batch may begin before the offset asked for
        console.log(`partition ${partition} offset ${m.offset} key ${m.key} value ${m.value}` +
                    ` source=${m.headers.source}`);
        next = BigInt(m.offset) + 1n;
        read++;
      }
      if (next === before) break; // only rolled-back offsets left below the end
    }
  }
  await cluster.disconnect();
  console.log(`read ${read} messages`);
}

main().catch((e) => { console.error(e); process.exit(1); });
