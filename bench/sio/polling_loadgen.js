#!/usr/bin/env node
// Polling clients (the official socket.io-client, transports: ["polling"]) doing acked
// echoes in a loop for a set time, for bench/polling_cluster.py.
//
//   node polling_loadgen.js URL '{"clients":100,"seconds":10,"inflight":1}'
//
// Prints one JSON line: {"acks", "seconds", "p50", "p99", "errors", "connected"}.
'use strict';

const { io } = require('socket.io-client');

const url = process.argv[2];
const opts = JSON.parse(process.argv[3] || '{}');
const N = opts.clients || 100;
const seconds = opts.seconds || 10;
const inflight = opts.inflight || 1;
const latencies = [];
const errors = [];
let connected = 0;
let acks = 0;
let running = true;
const sockets = [];

async function loop(socket) {
  while (running) {
    const t0 = process.hrtime.bigint();
    try {
      await socket.timeout(20000).emitWithAck('echo', 1);
      acks += 1;
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch (err) {
      if (running) errors.push(err.message);
      return;
    }
  }
}

async function main() {
  await Promise.all(Array.from({ length: N }, () => new Promise((resolve) => {
    const socket = io(url, { transports: ['polling'], reconnection: false, forceNew: true });
    sockets.push(socket);
    socket.on('connect', () => { connected += 1; resolve(); });
    socket.on('connect_error', (err) => { errors.push(err.message); resolve(); });
    socket.on('disconnect', (reason) => { if (running) errors.push(reason); });
  })));
  const start = Date.now();
  const loops = [];
  for (const socket of sockets) {
    for (let i = 0; i < inflight; i++) loops.push(loop(socket));
  }
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  running = false;
  const elapsed = (Date.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pick = (q) => (latencies.length ? latencies[Math.floor(latencies.length * q)] : null);
  process.stdout.write(JSON.stringify({
    acks, seconds: elapsed, p50: pick(0.5), p99: pick(0.99), connected,
    errors: errors.slice(0, 10), error_count: errors.length,
  }) + '\n');
  for (const socket of sockets) socket.disconnect();
  setTimeout(() => process.exit(0), 300);
}

main();
