#!/usr/bin/env node
// Many official `socket.io-client`s at once, for tests behind a load balancer.
//
// Usage:
//   node sio_swarm.js URL OPTIONS_JSON
//
// OPTIONS_JSON: {"clients": N, "acks": K, "broadcasts": M, "transports": [...]|null,
//                "timeout": ms}
// Each client connects (reconnection off: a failure is an error, not a retry), emits
// "join" "room" with an ack, then K acknowledged "add" events (checking each sum), then
// one "ask-me" whose ack carries the answer the client gave to the server's "question"
// (an acknowledgement from server to client and back). Once every client has done so the
// script prints {"ev":"ready"}; the test then broadcasts M "news" events (0..M-1) to the
// room from the three nodes in turn, and each client must get them all, each node's in
// the order it sent them. At the end it prints one summary:
//   {"ev":"done","clients","connected","acks","asked","news_complete",
//    "transports":{"polling": n, "websocket": n},"errors":[...],"error_count"}
'use strict';

const { io } = require('socket.io-client');

const url = process.argv[2];
const opts = JSON.parse(process.argv[3] || '{}');
const N = opts.clients || 10;
const K = opts.acks || 5;
const M = opts.broadcasts || 10;
const errors = [];
let connected = 0;
let acks = 0;
let asked = 0;
let ready = 0;
let complete = 0;
let finished = false;
const sockets = [];
const transports = {};

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function finish() {
  if (finished) return;
  finished = true;
  for (const s of sockets) {
    transports[s.io.engine ? s.io.engine.transport.name : 'none'] =
      (transports[s.io.engine ? s.io.engine.transport.name : 'none'] || 0) + 1;
  }
  out({ ev: 'done', clients: N, connected, acks, asked, news_complete: complete,
        transports, errors: errors.slice(0, 20), error_count: errors.length });
  for (const s of sockets) s.disconnect();
  setTimeout(() => process.exit(0), 200);
}

setTimeout(() => { errors.push('timeout'); finish(); }, opts.timeout || 60000);

// What a transport error carries: the HTTP status of a failed poll, or the cause.
function why(details) {
  if (!details) return '';
  const d = details.description;
  const text = d && typeof d === 'object' ? d.message || String(d) : d;
  return ` (${details.message || ''}${text !== undefined ? ' ' + text : ''})`;
}

async function run(i) {
  const options = { reconnection: false, forceNew: true, timeout: 20000 };
  if (opts.transports) options.transports = opts.transports;
  const socket = io(url, options);
  sockets.push(socket);
  const news = [];
  socket.on('connect_error', (err) => errors.push(`client ${i} connect_error: ${err.message}${why(err)}`));
  socket.on('disconnect', (reason, details) => {
    if (!finished) errors.push(`client ${i} disconnect: ${reason}${why(details)}`);
  });
  socket.on('question', (text, ack) => ack(42));
  socket.on('news', (n) => {
    news.push(n);
    if (news.length === M) {
      // Each node's broadcasts arrive in the order that node sent them (news n comes
      // from node n % 3); broadcasts of different nodes are not ordered between them.
      const all = [...news].sort((a, b) => a - b).every((v, j) => v === j);
      const perNode = [0, 1, 2].every((k) => {
        const mine = news.filter((v) => v % 3 === k);
        return mine.every((v, j) => j === 0 || v > mine[j - 1]);
      });
      if (all && perNode) complete += 1;
      else errors.push(`client ${i} news: ${news.join(',')}`);
      if (complete === N) finish();
    }
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  connected += 1;
  const ok = await socket.timeout(20000).emitWithAck('join', 'room');
  if (ok !== 'ok') errors.push(`client ${i} join: ${ok}`);
  for (let k = 0; k < K; k++) {
    const sum = await socket.timeout(20000).emitWithAck('add', i, k);
    if (sum === i + k) acks += 1;
    else errors.push(`client ${i} add ${i}+${k} = ${sum}`);
  }
  const answer = await socket.timeout(20000).emitWithAck('ask-me');
  if (answer === 42) asked += 1;
  else errors.push(`client ${i} ask-me: ${answer}`);
  ready += 1;
  if (ready === N) out({ ev: 'ready' });
}

for (let i = 0; i < N; i++) {
  run(i).catch((err) => { errors.push(`client ${i}: ${err.message}`); });
}
