#!/usr/bin/env node
// A scripted WebSocket client built on the `ws` package, for interop tests against an
// echo server.
//
// Usage:
//   node ws_client.js URL [--deflate] [--steps a,b,c] [--big BYTES] [--origin ORIGIN]
//                         [--protocol NAME]... [--header NAME:VALUE]...
//                         [--close CODE[:REASON]] [--expect-close TEXT] [--timeout MS]
//
// Runs the steps in order against an echo server, each waiting for its echo, then closes
// (default code 1000, reason "done"). With --expect-close TEXT it instead sends TEXT and
// waits for the server to close the connection.
//
// Steps (default: all but "compressible"):
//   text, unicode, empty_text, binary, empty_binary, big, fragmented, binfragmented,
//   burst, ping, serverping, compressible
// ("serverping" sends the text command "cmd:ping:from-server": the echo server pings us,
//  and once our automatic pong is in, it sends "pong:from-server".)
//
// Prints exactly one JSON line on stdout:
//   {"opened", "status", "responseHeaders", "body", "extensions", "protocol",
//    "steps": {name: {"ok", ...}}, "closeCode", "closeReason", "error"}
// "status"/"body" are set when the server answered the upgrade with a non-101 response.
// Exit code 0 when the run completed (even if a step mismatched: the test judges), 1 on
// timeout or transport error, 2 on bad arguments.
'use strict';

const WebSocket = require('ws');

const ALL_STEPS = [
  'text', 'unicode', 'empty_text', 'binary', 'empty_binary', 'big',
  'fragmented', 'binfragmented', 'burst', 'ping', 'serverping',
];

function parseArgs(argv) {
  const opts = {
    url: null,
    deflate: false,
    steps: ALL_STEPS,
    big: 1024 * 1024,
    origin: undefined,
    protocols: [],
    headers: {},
    closeCode: 1000,
    closeReason: 'done',
    expectClose: null,
    timeout: 20000,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--deflate': opts.deflate = true; break;
      case '--steps': opts.steps = argv[++i].split(',').filter(Boolean); break;
      case '--big': opts.big = Number(argv[++i]); break;
      case '--origin': opts.origin = argv[++i]; break;
      case '--protocol': opts.protocols.push(argv[++i]); break;
      case '--header': {
        const h = argv[++i];
        const idx = h.indexOf(':');
        opts.headers[h.slice(0, idx).trim()] = h.slice(idx + 1).trim();
        break;
      }
      case '--close': {
        const c = argv[++i];
        const idx = c.indexOf(':');
        if (idx < 0) { opts.closeCode = Number(c); opts.closeReason = ''; }
        else { opts.closeCode = Number(c.slice(0, idx)); opts.closeReason = c.slice(idx + 1); }
        break;
      }
      case '--expect-close': opts.expectClose = argv[++i]; break;
      case '--timeout': opts.timeout = Number(argv[++i]); break;
      default:
        if (opts.url === null && !a.startsWith('--')) { opts.url = a; break; }
        throw new Error(`unknown argument: ${a}`);
    }
  }
  if (!opts.url) throw new Error('URL is required');
  for (const s of opts.steps) {
    if (!ALL_STEPS.includes(s) && s !== 'compressible') throw new Error(`unknown step: ${s}`);
  }
  return opts;
}

function patternBytes(n, mul) {
  const buf = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) buf[i] = (i * mul) & 0xff;
  return buf;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`ws_client.js: ${err.message}\n`);
  process.exit(2);
}

const out = {
  url: opts.url,
  opened: false,
  status: null,
  responseHeaders: null,
  body: null,
  extensions: null,
  protocol: null,
  steps: {},
  closeCode: null,
  closeReason: null,
  error: null,
};

let finished = false;
function finish(exitCode) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(exitCode);
}

setTimeout(() => {
  out.error = out.error || `timeout after ${opts.timeout} ms`;
  finish(1);
}, opts.timeout).unref();

// Incoming messages, consumed in order by the steps.
const inbox = [];
const waiters = [];
let closedResolve;
const closed = new Promise((resolve) => { closedResolve = resolve; });

function nextMessage() {
  if (inbox.length) return Promise.resolve(inbox.shift());
  return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
}

const wsOptions = {
  perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
  maxPayload: 256 * 1024 * 1024,
  headers: opts.headers,
  handshakeTimeout: Math.max(1000, opts.timeout - 1000),
};
if (opts.origin !== undefined) wsOptions.origin = opts.origin;

const ws = new WebSocket(opts.url, opts.protocols, wsOptions);

ws.on('upgrade', (res) => {
  out.status = res.statusCode;
  out.responseHeaders = res.headers;
});

ws.on('unexpected-response', (req, res) => {
  out.status = res.statusCode;
  out.responseHeaders = res.headers;
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    out.body = Buffer.concat(chunks).toString('utf8');
    req.destroy();
    finish(0);
  });
  res.on('error', () => finish(0));
});

ws.on('error', (err) => {
  out.error = String(err && err.message || err);
  for (const w of waiters.splice(0)) w.reject(err);
  // 'close' follows an error on an open socket; before open there is no 'close'.
  if (!out.opened) finish(1);
});

ws.on('message', (data, isBinary) => {
  const msg = { data, isBinary };
  if (waiters.length) waiters.shift().resolve(msg);
  else inbox.push(msg);
});

ws.on('close', (code, reason) => {
  out.closeCode = code;
  out.closeReason = reason.toString('utf8');
  const err = new Error(`closed ${code}`);
  for (const w of waiters.splice(0)) w.reject(err);
  closedResolve();
});

function socketCounters() {
  const s = ws._socket;
  return s ? { read: s.bytesRead, written: s.bytesWritten } : { read: 0, written: 0 };
}

async function expectText(name, sent) {
  const m = await nextMessage();
  const got = m.data.toString('utf8');
  out.steps[name] = { ok: !m.isBinary && got === sent, binary: m.isBinary, length: Buffer.byteLength(got) };
}

async function expectBinary(name, sent) {
  const m = await nextMessage();
  const got = Buffer.isBuffer(m.data) ? m.data : Buffer.concat(m.data);
  out.steps[name] = { ok: m.isBinary && got.equals(sent), binary: m.isBinary, length: got.length };
}

const STEPS = {
  async text() {
    ws.send('hello tether');
    await expectText('text', 'hello tether');
  },
  async unicode() {
    const s = 'h\u00e9llo w\u00f6rld \u2713 \u{1F680} \u4e2d\u6587';
    ws.send(s);
    await expectText('unicode', s);
  },
  async empty_text() {
    ws.send('');
    await expectText('empty_text', '');
  },
  async binary() {
    const b = patternBytes(256, 1);
    ws.send(b);
    await expectBinary('binary', b);
  },
  async empty_binary() {
    const b = Buffer.alloc(0);
    ws.send(b);
    await expectBinary('empty_binary', b);
  },
  async big() {
    const b = patternBytes(opts.big, 7);
    ws.send(b);
    await expectBinary('big', b);
  },
  async fragmented() {
    // One text message in three frames; the multi-byte character is split across frames
    // on purpose (RFC 6455 5.6: text is validated on the whole message).
    const whole = Buffer.from('frag-one/frag-\u00e9/frag-three', 'utf8');
    const cut1 = 9;
    const cut2 = whole.indexOf(0xc3) + 1; // inside the two-byte "é"
    ws.send(whole.subarray(0, cut1), { binary: false, fin: false });
    ws.send(whole.subarray(cut1, cut2), { binary: false, fin: false });
    ws.send(whole.subarray(cut2), { binary: false, fin: true });
    await expectText('fragmented', whole.toString('utf8'));
  },
  async binfragmented() {
    const parts = [patternBytes(1000, 3), patternBytes(70000, 5), patternBytes(1, 1)];
    parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
    await expectBinary('binfragmented', Buffer.concat(parts));
  },
  async burst() {
    // Many messages without waiting: order must be kept.
    const n = 200;
    for (let i = 0; i < n; i++) ws.send(`msg-${i}`);
    let ok = true;
    for (let i = 0; i < n; i++) {
      const m = await nextMessage();
      if (m.isBinary || m.data.toString('utf8') !== `msg-${i}`) ok = false;
    }
    out.steps.burst = { ok, count: n };
  },
  async ping() {
    const payload = Buffer.from('are-you-there', 'utf8');
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(payload);
    const got = await pong;
    out.steps.ping = { ok: Buffer.from(got).equals(payload), payload: Buffer.from(got).toString('utf8') };
  },
  async serverping() {
    let pinged = null;
    ws.once('ping', (data) => { pinged = Buffer.from(data).toString('utf8'); });
    ws.send('cmd:ping:from-server');
    const m = await nextMessage();
    const got = m.data.toString('utf8');
    out.steps.serverping = { ok: !m.isBinary && got === 'pong:from-server' && pinged !== null, pinged, got };
  },
  async compressible() {
    // Highly repetitive text: with permessage-deflate the bytes on the wire are far fewer
    // than the message size, in both directions.
    const s = 'tether compresses repetitive text. '.repeat(8192);
    const before = socketCounters();
    ws.send(s);
    await expectText('compressible', s);
    const after = socketCounters();
    Object.assign(out.steps.compressible, {
      size: Buffer.byteLength(s),
      wireWritten: after.written - before.written,
      wireRead: after.read - before.read,
    });
  },
};

ws.on('open', async () => {
  out.opened = true;
  out.extensions = ws.extensions;
  out.protocol = ws.protocol;
  try {
    for (const name of opts.steps) {
      try {
        await STEPS[name]();
      } catch (err) {
        out.steps[name] = { ok: false, error: String(err && err.message || err) };
        throw err;
      }
    }
    if (opts.expectClose !== null) {
      ws.send(opts.expectClose);
    } else {
      ws.close(opts.closeCode, opts.closeReason);
    }
    await closed;
    finish(0);
  } catch (err) {
    out.error = out.error || String(err && err.message || err);
    // Let a pending close frame arrive so the close code is reported.
    const grace = new Promise((resolve) => setTimeout(resolve, 1000));
    await Promise.race([closed, grace]);
    finish(1);
  }
});
