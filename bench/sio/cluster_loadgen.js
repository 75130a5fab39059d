// Cluster broadcast generator for bench/cluster.py (socket.io-client, WebSocket only).
//
//   node cluster_loadgen.js --ports P1,P2,P3 [--members 300] [--others 10] [--size 64]
//        [--window 16] [--warmup 0.5] [--duration 3] [--local-count 300] [--timeout 20]
//
// Clients are spread evenly over the nodes (member k on node k % N). `members` clients
// join room "r"; `others` clients per node join nothing, except those of node 0, which
// join "local0". One more client on node 0, the emitter, emits pub(room, {s, t, p}): the
// server emits "m" with that payload to the room. t is the generator's clock at the emit
// (performance.now(); every client lives in this process, so emit->delivery latency is
// exact). Pacing is closed-loop: at most `window` messages are in flight, a message
// leaving the window when every member has it ("as fast as the cluster allows").
//
// Phase A: room "r" for `duration` s after `warmup` s: deliveries/s, p50/p99 latency.
// Phase B: `local-count` messages to "local0" (hosted by node 0 only): what nodes 1..N-1
// read from Redis then is traffic for a room they do not host.
//
// Around each phase it prints "SNAP <name>" and waits for a line on stdin (bench/cluster.py
// reads the Redis counters meanwhile), and asks every node for its `stats` (tether's
// broker counters; {} elsewhere). It ends with one line "RESULT <json>".
'use strict';

const path = require('path');
const readline = require('readline');
const { io } = require(path.join(__dirname, 'node_modules', 'socket.io-client'));

const DEFAULTS = {
  host: '127.0.0.1', ports: '', members: 300, others: 10, size: 64, window: 16,
  warmup: 0.5, duration: 3, localCount: 300, timeout: 20,
};

function parseArgs(argv) {
  const args = { ...DEFAULTS };
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${argv[i]}`);
    const v = argv[++i];
    args[key] = typeof DEFAULTS[key] === 'number' ? Number(v) : v;
  }
  args.ports = args.ports.split(',').filter(Boolean).map(Number);
  if (!args.ports.length) throw new Error('--ports is required');
  return args;
}

const args = parseArgs(process.argv);
const N = args.ports.length;
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function withTimeout(promise, seconds, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout: ${what}`)), seconds * 1000); }),
  ]).finally(() => clearTimeout(timer));
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = io(`http://${args.host}:${port}`, {
      transports: ['websocket'], reconnection: false, perMessageDeflate: false, forceNew: true,
    });
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

// per-message delivery bookkeeping
const state = {
  phase: 'idle', target: 0, counts: new Map(), done: new Set(), record: false,
  latencies: [], delivered: 0, leaked: 0, onDone: null,
};

function onM(kind, payload) {
  if (!payload || typeof payload.s !== 'number') return;
  if (kind === 'other' && state.phase === 'A') { state.leaked += 1; return; }
  if (kind === 'member' && state.phase === 'B') { state.leaked += 1; return; }
  if (state.record) {
    state.delivered += 1;
    state.latencies.push(now() - payload.t);
  }
  const c = (state.counts.get(payload.s) || 0) + 1;
  state.counts.set(payload.s, c);
  if (c === state.target) { state.counts.delete(payload.s); if (state.onDone) state.onDone(payload.s); }
}

async function stats(statSockets) {
  return Promise.all(statSockets.map((s) => withTimeout(s.emitWithAck('stats'), 5, 'stats')));
}

async function snap(name, statSockets, result) {
  const st = await stats(statSockets);
  process.stdout.write(`SNAP ${name}\n`);
  await withTimeout(lines.next(), 30, 'snapshot handshake');
  result.stats[name] = st;
}

// closed-loop run: at most `window` in flight; stop sending at `until` (ms) or after `count`
function run(emitter, room, target, { until = Infinity, count = Infinity }) {
  return new Promise((resolve, reject) => {
    const pad = 'x'.repeat(args.size);
    let seq = 0; let inflight = 0; let stopped = false; let last = now();
    state.target = target;
    const send = () => {
      while (!stopped && inflight < args.window) {
        if (seq >= count || now() >= until) { stopped = true; break; }
        inflight += 1;
        emitter.emit('pub', room, { s: seq++, t: now(), p: pad });
      }
      if (stopped && inflight === 0) finish();
    };
    const guard = setInterval(() => {
      if (now() - last > args.timeout * 1000) { clearInterval(guard); reject(new Error(`stalled in ${room}: ${state.counts.size} incomplete`)); }
      if (!stopped && now() >= until) send();
    }, 50);
    const finish = () => { clearInterval(guard); state.onDone = null; resolve(seq); };
    state.onDone = () => { inflight -= 1; last = now(); send(); };
    send();
  });
}

function pct(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
  const result = { nodes: N, members: args.members, others_per_node: args.others, size: args.size, window: args.window, stats: {} };
  const members = []; const others = [];
  for (let k = 0; k < args.members; k += 25) {
    const batch = [];
    for (let j = k; j < Math.min(args.members, k + 25); j++) batch.push(connect(args.ports[j % N]));
    members.push(...await withTimeout(Promise.all(batch), args.timeout, 'connect members'));
  }
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < args.others; j++) others.push({ node: n, s: await withTimeout(connect(args.ports[n]), args.timeout, 'connect others') });
  }
  const emitter = await withTimeout(connect(args.ports[0]), args.timeout, 'connect emitter');
  const statSockets = args.ports.map((_, n) => others.find((o) => o.node === n).s);
  members.forEach((s) => s.on('m', (p) => onM('member', p)));
  others.forEach((o) => o.s.on('m', (p) => onM('other', p)));
  await withTimeout(Promise.all(members.map((s) => s.emitWithAck('join', 'r'))), args.timeout, 'join r');
  const local = others.filter((o) => o.node === 0).map((o) => o.s);
  await withTimeout(Promise.all(local.map((s) => s.emitWithAck('join', 'local0'))), args.timeout, 'join local0');

  // warm-up (every member must get every message, or it stalls and fails)
  state.phase = 'A';
  await run(emitter, 'r', args.members, { until: now() + args.warmup * 1000 });
  await snap('A0', statSockets, result);
  state.record = true;
  const t0 = now();
  const cpu0 = process.cpuUsage();
  const sent = await run(emitter, 'r', args.members, { until: t0 + args.duration * 1000 });
  const elapsed = (now() - t0) / 1000;  // until the last message sent was fully delivered
  const cpu = process.cpuUsage(cpu0);
  state.record = false;
  await snap('A1', statSockets, result);
  const lat = state.latencies.sort((a, b) => a - b);
  Object.assign(result, {
    emits: sent, deliveries: state.delivered, seconds: elapsed,
    deliveries_per_s: state.delivered / elapsed,
    p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), leaked_A: state.leaked,
    gen_cpu_pct: (100 * (cpu.user + cpu.system)) / 1e6 / elapsed,
  });

  state.phase = 'B'; state.leaked = 0;
  await snap('B0', statSockets, result);
  const tb = now();
  result.local_emits = await run(emitter, 'local0', local.length, { count: args.localCount });
  result.local_seconds = (now() - tb) / 1000;
  await sleep(300);  // let Redis finish writing to the nodes that do not host local0
  await snap('B1', statSockets, result);
  result.leaked_B = state.leaked;
  for (const s of [...members, ...others.map((o) => o.s), emitter]) s.close();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
