// Socket.IO load generator for the tether benchmarks.
//
// One Node process driving many socket.io-client sockets (WebSocket transport only, no
// compression offered, no reconnection) against any Socket.IO v5 server that implements
// the benchmark events (see bench/servers/sio_tether_server.py):
//
//   echo   --conns N --size B --warmup S --duration S
//          each socket emits "echo" with a B-byte string and waits for "echo" back (one
//          in flight per socket): round trips/s, p50/p99 latency in µs
//   bcast  --conns N --bcast-count K --size B
//          every socket joins room "r" (acknowledged); socket 0 emits bcast("r", K, B);
//          deliveries/s from that emit until all N*K "m" events arrived
//   idle   --conns N --settle S
//          server VmRSS before connecting; N sockets connect and do one echo each; after
//          S seconds, VmRSS again: KiB of server memory per socket
//
// It prints one JSON object, like the C generator: the metrics, its own CPU use
// (process.cpuUsage) and the server's (/proc/PID/stat, with --server-pid) over the
// measurement window, in % of one core. Near 100% generator CPU means the generator,
// not the server, may be the limit.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { io } = require(path.join(__dirname, 'node_modules', 'socket.io-client'));

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  serverPid: 0,
  scenario: 'echo',
  conns: 1,
  size: 16,
  warmup: 1,
  duration: 5,
  bcastCount: 100,
  room: 'r',
  settle: 2,
  connectConcurrency: 50,
  timeout: 60,
};

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node loadgen.js --port P [--server-pid PID] ` +
      '[--scenario echo|bcast|idle] [--conns N] [--size B] [--warmup S] [--duration S] ' +
      '[--bcast-count K] [--settle S] [--connect-concurrency C] [--timeout S]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const args = { ...DEFAULTS };
  for (let i = 2; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith('--')) usage(`unexpected argument ${flag}`);
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in DEFAULTS)) usage(`unknown option ${flag}`);
    const value = argv[++i];
    if (value === undefined) usage(`${flag} needs a value`);
    args[key] = typeof DEFAULTS[key] === 'number' ? Number(value) : value;
    if (Number.isNaN(args[key])) usage(`${flag}: not a number: ${value}`);
  }
  if (!args.port) usage('--port is required');
  if (!['echo', 'bcast', 'idle'].includes(args.scenario)) usage(`unknown scenario ${args.scenario}`);
  return args;
}

const args = parseArgs(process.argv);
const url = `http://${args.host}:${args.port}`;
const errors = { connect: 0, disconnect: 0, missing: 0 };
let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  // keep the usual Linux value
}

// ------------------------------------------------------------------------------ meters

function now() {
  return process.hrtime.bigint();
}

function serverTicks() {
  if (!args.serverPid) return -1;
  try {
    const stat = fs.readFileSync(`/proc/${args.serverPid}/stat`, 'latin1');
    // fields after "(comm)": state is field 3, utime 14, stime 15 (proc(5))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return -1;
  }
}

function serverRssKiB() {
  if (!args.serverPid) return -1;
  try {
    const status = fs.readFileSync(`/proc/${args.serverPid}/status`, 'latin1');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) : -1;
  } catch {
    return -1;
  }
}

class Window {
  // CPU of this process and of the server between start() and stop()
  start() {
    this.t0 = now();
    this.cpu0 = process.cpuUsage();
    this.srv0 = serverTicks();
  }

  stop() {
    this.seconds = Number(now() - this.t0) / 1e9;
    const cpu = process.cpuUsage(this.cpu0);
    const srv1 = serverTicks();
    this.genCpuPct = ((cpu.user + cpu.system) / 1e6 / this.seconds) * 100;
    this.serverCpuPct =
      this.srv0 >= 0 && srv1 >= 0 ? ((srv1 - this.srv0) / clockTicks / this.seconds) * 100 : -1;
  }

  fields() {
    return {
      seconds: round(this.seconds, 3),
      gen_cpu_pct: round(this.genCpuPct, 1),
      server_cpu_pct: round(this.serverCpuPct, 1),
    };
  }
}

function round(value, digits) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function percentile(sorted, p) {
  if (!sorted.length) return -1;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

function sleep(seconds) {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

// ------------------------------------------------------------------------------ sockets

function connectOne() {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      perMessageDeflate: false,
      timeout: 20000,
    });
    socket.once('connect', () => {
      socket.on('disconnect', (reason) => {
        if (!closing) {
          errors.disconnect++;
          if (errors.disconnect === 1) process.stderr.write(`disconnected: ${reason}\n`);
        }
      });
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function connectAll(n) {
  const sockets = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      try {
        sockets[i] = await connectOne();
      } catch (err) {
        errors.connect++;
        throw new Error(`connect ${i}: ${err.message}`);
      }
    }
  }
  const workers = [];
  for (let w = 0; w < Math.min(n, args.connectConcurrency); w++) workers.push(worker());
  await Promise.all(workers);
  return sockets;
}

let closing = false;
let sockets = [];

function closeAll() {
  closing = true;
  for (const socket of sockets) if (socket) socket.close();
}

function echoOnce(socket, payload) {
  return new Promise((resolve) => {
    socket.once('echo', resolve);
    socket.emit('echo', payload);
  });
}

// ------------------------------------------------------------------------------ scenarios

async function echoScenario() {
  const payload = 'x'.repeat(args.size);
  sockets = await connectAll(args.conns);
  let running = true;
  let measuring = false;
  let count = 0;
  let latencies = [];
  for (const socket of sockets) {
    let sent = 0n;
    socket.on('echo', () => {
      const t = now();
      if (measuring) {
        count++;
        latencies.push(Number(t - sent) / 1000);
      }
      if (running) {
        sent = t;
        socket.emit('echo', payload);
      }
    });
    sent = now();
    socket.emit('echo', payload);
  }
  await sleep(args.warmup);
  const window = new Window();
  count = 0;
  latencies = [];
  measuring = true;
  window.start();
  await sleep(args.duration);
  measuring = false;
  window.stop();
  running = false;
  const measured = latencies.sort((a, b) => a - b);
  return {
    rps: round(count / window.seconds, 1),
    p50_us: round(percentile(measured, 50), 1),
    p99_us: round(percentile(measured, 99), 1),
    messages: count,
    ...window.fields(),
  };
}

async function bcastScenario() {
  sockets = await connectAll(args.conns);
  await Promise.all(sockets.map((socket) => socket.timeout(20000).emitWithAck('join', args.room)));
  const target = args.conns * args.bcastCount;
  const perSocket = new Uint32Array(args.conns);
  let received = 0;
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });
  sockets.forEach((socket, i) => {
    socket.on('m', (data) => {
      if (typeof data !== 'string' || data.length !== args.size) errors.missing++;
      perSocket[i]++;
      if (++received === target) finish();
    });
  });
  const window = new Window();
  window.start();
  sockets[0].emit('bcast', args.room, args.bcastCount, args.size);
  await done;
  window.stop();
  const short = perSocket.filter((n) => n !== args.bcastCount).length;
  if (short) errors.missing += short;
  return {
    deliveries_per_s: round(target / window.seconds, 1),
    deliveries: received,
    ...window.fields(),
  };
}

async function idleScenario() {
  const window = new Window();
  window.start();
  const before = serverRssKiB();
  const payload = 'x'.repeat(args.size);
  sockets = await connectAll(args.conns);
  await Promise.all(sockets.map((socket) => echoOnce(socket, payload)));
  await sleep(args.settle);
  const after = serverRssKiB();
  window.stop();
  return {
    kib_per_conn: before >= 0 && after >= 0 ? round((after - before) / args.conns, 2) : -1,
    rss_before_kib: before,
    rss_after_kib: after,
    ...window.fields(),
  };
}

// ------------------------------------------------------------------------------ main

async function main() {
  const timer = setTimeout(() => {
    finishRun({ ok: false, error: `timeout after ${args.timeout} s` }, 1);
  }, args.timeout * 1000);
  let result;
  try {
    const run = { echo: echoScenario, bcast: bcastScenario, idle: idleScenario }[args.scenario];
    result = { ok: true, ...(await run()) };
  } catch (err) {
    result = { ok: false, error: err.message };
  }
  clearTimeout(timer);
  if (errors.connect || errors.disconnect || errors.missing) result.ok = false;
  finishRun(result, result.ok ? 0 : 1);
}

function finishRun(result, code) {
  closeAll();
  const out = {
    generator: 'socket.io-client',
    scenario: args.scenario,
    conns: args.conns,
    ...result,
    errors,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  // let the close frames go out, then leave
  setTimeout(() => process.exit(code), 200);
}

main();
