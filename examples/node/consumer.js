// pgtopic consumer for Node.js (the `pg` package): LISTEN pgtopic for wake-ups, long-poll
// consume as a member of a group, process and commit in one transaction, reconnect with
// back-off when the server goes away.
//
//   node examples/node/consumer.js --topic orders --group billing [--expect N]
//   (connection from the usual PGHOST / PGPORT / PGDATABASE / PGUSER environment variables)
'use strict';
const { Client } = require('pg');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const topic = arg('topic', 'orders');
const group = arg('group', 'example-node');
const batch = Number(arg('batch', '100'));
const expect = Number(arg('expect', '0'));
const timeoutMs = Number(arg('timeout', '60')) * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect(deadline) {
  let delay = 100;
  for (;;) {
    const client = new Client({ application_name: 'pgtopic-example-node' });
    try {
      await client.connect();
      client.on('error', () => {}); // surfaced by the next query
      await client.query('LISTEN pgtopic'); // per session: again after every reconnect
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() + delay > deadline) throw err;
      console.error(`connect failed (${err.message}), retrying in ${delay} ms`);
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

// One poll: consume (waiting up to 1 s inside the server), process, commit, atomically.
async function consumeBatch(client) {
  await client.query('BEGIN');
  try {
    const { rows } = await client.query(
      'SELECT "partition", msg_offset, key, value FROM pgtopic.consume_json($1, $2, $3, 1000)',
      [topic, group, batch]);
    for (const row of rows.slice(0, 3)) {
      console.log(`  partition ${row.partition} offset ${row.msg_offset} key ${row.key}`, row.value);
    }
    await client.query('SELECT pgtopic.commit($1, $2)', [topic, group]);
    await client.query('COMMIT');
    return rows.length;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {}); // the same messages come again
    throw err;
  }
}

async function main() {
  const deadline = expect ? Date.now() + timeoutMs : Infinity;
  let received = 0;
  let client = await connect(deadline);
  while (!expect || received < expect) {
    if (Date.now() > deadline) {
      console.error(`timed out with ${received} of ${expect} messages`);
      return 1;
    }
    try {
      const n = await consumeBatch(client);
      received += n;
      if (n) console.log(`consumed ${n} (total ${received})`);
    } catch (err) {
      console.error(`connection lost (${err.message}); reconnecting`);
      await client.end().catch(() => {});
      client = await connect(deadline);
    }
  }
  await client.end();
  console.log(`done: ${received} messages`);
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
