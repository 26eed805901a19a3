// kafkajs against pgtopic's Kafka listener, one command per run, driven by
// test/kafka/kafka_kafkajs.py (which runs the SQL side and compares). Prints one JSON line.
//
//   node kjs.js BROKER admin
//   node kjs.js BROKER produce TOPIC N          N keyed messages with headers, acks -1, no partition
//   node kjs.js BROKER read TOPIC PARTITIONS    every message of each partition, read without a group
//
// 'read' goes through kafkajs's own protocol layer (its Cluster and Broker: ListOffsets, then
// Fetch from offset 0 up to the high watermark, decoded by kafkajs): kafkajs has no assign() and
// pgtopic serves no consumer groups yet.
'use strict'
const { Kafka, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger, LEVELS } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const socketFactory = require('kafkajs/src/network/socketFactory')

const [broker, cmd, topic, arg] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'pgtopic-kafkajs-test', brokers: [broker], logLevel: logLevel.NOTHING,
  retry: { retries: 10, initialRetryTime: 100 } })
const str = b => (b == null ? null : b.toString())

async function admin() {
  const a = kafka.admin()
  await a.connect()
  const out = {}
  out.created = await a.createTopics({ topics: [{ topic: 'kjs_admin', numPartitions: 3 }], waitForLeaders: true })
  out.createdAgain = await a.createTopics({ topics: [{ topic: 'kjs_admin', numPartitions: 3 }] })
  const md = await a.fetchTopicMetadata({ topics: ['kjs_admin'] })
  out.metadata = md.topics.map(t => ({ name: t.name,
    partitions: t.partitions.map(p => [p.partitionId, p.leader]).sort((x, y) => x[0] - y[0]) }))
  await a.deleteTopics({ topics: ['kjs_admin'] })
  out.listAfterDelete = (await a.listTopics()).sort()
  await a.disconnect()
  return out
}

async function produce() {
  const p = kafka.producer({ allowAutoTopicCreation: false })  // the default partitioner (murmur2)
  await p.connect()
  const n = Number(arg)
  const sent = []
  // Four send() calls of n/4 messages: each is one Produce request with one batch per partition.
  for (let part = 0; part < 4; part++) {
    const messages = []
    for (let i = part * n / 4; i < (part + 1) * n / 4; i++)
      messages.push({ key: `key-${i}`, value: `kjs-${i}`, headers: { h1: `one-${i}`, h2: 'two' } })
    const r = await p.send({ topic, acks: -1, messages })
    sent.push({ values: messages.map(m => m.value), result: r.map(x => [x.partition, x.errorCode, x.baseOffset]) })
  }
  await p.disconnect()
  return { sent }
}

async function read() {
  const partitions = Number(arg)
  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: LoggerConsole }),
    socketFactory: socketFactory(), brokers: [broker], clientId: 'pgtopic-kafkajs-test',
    offsets: new Map(), isolationLevel: 1, allowAutoTopicCreation: false,
    connectionTimeout: 3000, requestTimeout: 10000, retry: { retries: 5 },
  })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const partIds = [...Array(partitions).keys()]
  const a = kafka.admin()
  await a.connect()
  const topicOffsets = (await a.fetchTopicOffsets(topic)).sort((x, y) => x.partition - y.partition)
  await a.disconnect()
  const out = { offsets: topicOffsets.map(o => [o.partition, o.low, o.high]), partitions: {}, fetches: 0, errors: [] }
  const leaders = cluster.findLeaderForPartitions(topic, partIds)
  for (const nodeId of Object.keys(leaders)) {
    const b = await cluster.findBroker({ nodeId })
    for (const partition of leaders[nodeId]) {
      const high = BigInt(topicOffsets.find(o => o.partition === partition).high)
      const got = []
      let next = 0n
      while (next < high && out.fetches < 1000) {
        out.fetches++
        const r = await b.fetch({ isolationLevel: 1, maxWaitTime: 100, minBytes: 1, maxBytes: 1048576,
          topics: [{ topic, partitions: [{ partition, fetchOffset: next.toString(), maxBytes: 65536 }] }] })
        const pr = r.responses[0].partitions[0]
        if (pr.errorCode !== 0) { out.errors.push([partition, pr.errorCode]); break }
        if (BigInt(pr.highWatermark) !== high || BigInt(pr.lastStableOffset) !== high)
          out.errors.push([partition, 'hw/lso', pr.highWatermark, pr.lastStableOffset, high.toString()])
        let moved = false
        for (const m of pr.messages) {
          const off = BigInt(m.offset)
          if (off < next) continue   // a batch may start before the fetch offset
          if (off >= high) { out.errors.push([partition, 'above the high watermark', m.offset]); continue }
          const headers = {}
          for (const [k, v] of Object.entries(m.headers || {})) headers[k] = str(v)
          got.push([m.offset, str(m.key), str(m.value), headers])
          next = off + 1n
          moved = true
        }
        if (!moved) break  // nothing more below the high watermark (a trailing rolled-back gap)
      }
      out.partitions[partition] = got
    }
  }
  await cluster.disconnect()
  return out
}

const commands = { admin, produce, read }
commands[cmd]().then(r => { console.log(JSON.stringify(r)); process.exit(0) },
  e => { console.log(JSON.stringify({ error: `${e.name}: ${e.message}` })); process.exit(2) })
