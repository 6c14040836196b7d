'use strict';
// The cached token read from Node (bindings/node, `client.tokenSync()`) against reading a plain
// variable holding the same string, in the same process. Prints one JSON line for
// benches/report.py.
//
//   env $(compare serve) node benches/node/token.js [--quick]
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const quick = process.argv.includes('--quick');
const rounds = quick ? 4 : 12;
const iterations = quick ? 20000 : 200000;
const client = Client.fromEnv();
const cached = client.tokenSync();
let sink = 0;

function nsPerCall(op) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += op().length;
  return Number(process.hrtime.bigint() - start) / iterations;
}

const holder = { token: cached };
const ours = [];
const base = [];
for (let r = 0; r < rounds; r++) {
  if (r % 2 === 0) {
    ours.push(nsPerCall(() => client.tokenSync()));
    base.push(nsPerCall(() => holder.token));
  } else {
    base.push(nsPerCall(() => holder.token));
    ours.push(nsPerCall(() => client.tokenSync()));
  }
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(1)} ns`);
const row = {
  id: '8.1-token-node',
  what: 'Cached token, Node `client.tokenSync()` (koffi), 1 thread',
  ours: `${fmt(median(ours))}/call`,
  baseline: `${fmt(median(base))}/call (reading a variable holding the token)`,
  ratio: median(ours) / median(base),
  target: 'none set',
  met: null,
  note: `median of ${rounds} interleaved rounds of ${iterations} calls; Node ${process.version}; ` +
    'the call crosses into C through koffi and copies the token into a new JS string',
};
console.log(JSON.stringify(row));
console.error(`${row.id} ours ${row.ours} baseline ${row.baseline} (${sink > 0 ? 'ok' : ''})`);
client.close();
