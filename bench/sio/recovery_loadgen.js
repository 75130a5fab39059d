#!/usr/bin/env node
// Clients of one node that is about to be killed, for bench/recovery_time.py: the
// official socket.io-client on WebSocket (its default reconnection: 1 s +- 50 %).
//
//   node recovery_loadgen.js URL '{"clients":1000}'
//
// Connects the clients, each joins the room "r" (acked), then prints {"ev":"ready"}.
// Reads lines on stdin: "kill EPOCH_MS" (the node was killed at that moment), then
// "expect N" (N broadcasts to "r" were sent while the clients were away). Prints
// {"ev":"done", "recovered", "not_recovered", "complete", "p50", "p99", "max"}
// once every client is connected again and has every missed broadcast (or after
// 60 s): times are from the kill to the CONNECT that recovered the session.
'use strict';

const { io } = require('socket.io-client');
const readline = require('readline');

const url = process.argv[2];
const opts = JSON.parse(process.argv[3] || '{}');
const N = opts.clients || 1000;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let killedAt = null;
let expected = null;
const clients = [];

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function check(final) {
  if (expected === null) return;
  const back = clients.filter((c) => c.recoveredAt !== null || c.freshAt !== null);
  const complete = clients.filter((c) => c.got.length >= expected);
  if (!final && (back.length < N || complete.length < N)) return;
  const times = clients
    .filter((c) => c.recoveredAt !== null)
    .map((c) => c.recoveredAt - killedAt)
    .sort((a, b) => a - b);
  out({
    ev: 'done',
    recovered: times.length,
    not_recovered: clients.filter((c) => c.freshAt !== null).length,
    complete: complete.length,
    in_order: clients.filter((c) => c.got.every((v, i) => v === i)).length,
    p50: quantile(times, 0.5),
    p99: quantile(times, 0.99),
    max: times.length ? times[times.length - 1] : null,
  });
  for (const c of clients) c.socket.disconnect();
  process.exit(0);
}

async function main() {
  await Promise.all(Array.from({ length: N }, () => new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], forceNew: true });
    const c = { socket, got: [], recoveredAt: null, freshAt: null, first: true };
    clients.push(c);
    socket.on('connect', () => {
      if (c.first) {
        c.first = false;
        socket.timeout(30000).emitWithAck('join', 'r').then(resolve, reject);
        return;
      }
      if (socket.recovered) c.recoveredAt = Date.now();
      else c.freshAt = Date.now();
      check(false);
    });
    socket.on('m', (value) => {
      c.got.push(value);
      check(false);
    });
  })));
  out({ ev: 'ready' });
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [word, value] = line.trim().split(' ');
    if (word === 'kill') killedAt = Number(value);
    if (word === 'expect') {
      expected = Number(value);
      setTimeout(() => check(true), 60000);
      check(false);
    }
  });
}

main().catch((err) => {
  out({ ev: 'error', message: String(err) });
  process.exit(1);
});
