#!/usr/bin/env node
// A reference WebSocket echo server built on the `ws` package, for interop tests.
//
// Usage:
//   node ws_echo_server.js --port P [--host 127.0.0.1] [--deflate]
//                          [--max-payload BYTES] [--protocols a,b]
//
// Prints "READY <port>" on stdout once listening (P may be 0: the real port is printed).
// Every message is echoed back with its type kept (text stays text, binary stays binary).
// A few text messages are commands instead of being echoed:
//   "cmd:info"               -> JSON text: path, headers, negotiated extensions, subprotocol,
//                               bytes read/written on this socket so far
//   "cmd:close:CODE:REASON"  -> the server closes with that code and reason
//   "cmd:ping:PAYLOAD"       -> the server pings; on the pong it sends "pong:<payload>"
//   "cmd:fragments:N:TEXT"   -> the server sends TEXT N times as ONE text message in N frames
//   "cmd:binfragments:N:K"   -> one binary message of N frames of K bytes (byte i = i % 256)
//   "cmd:big:N"              -> one binary message of N bytes (byte i = i % 251)
//   "cmd:terminate"          -> drop the TCP connection without a closing handshake
// Exits on SIGTERM/SIGINT or when stdin closes.
'use strict';

const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', deflate: false, maxPayload: 64 * 1024 * 1024, protocols: [] };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case '--port': opts.port = Number(argv[++i]); break;
      case '--host': opts.host = argv[++i]; break;
      case '--deflate': opts.deflate = true; break;
      case '--max-payload': opts.maxPayload = Number(argv[++i]); break;
      case '--protocols': opts.protocols = argv[++i].split(',').filter(Boolean); break;
      default: throw new Error(`unknown argument: ${argv[i]}`);
    }
  }
  return opts;
}

function patternBytes(n, modulo) {
  const buf = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) buf[i] = i % modulo;
  return buf;
}

function log(...args) {
  process.stderr.write(`[ws_echo_server] ${args.join(' ')}\n`);
}

const opts = parseArgs(process.argv.slice(2));

const wss = new WebSocketServer({
  host: opts.host,
  port: opts.port,
  maxPayload: opts.maxPayload,
  // threshold 0: compress every message, so small messages exercise the extension too.
  perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
  handleProtocols: (offered /* Set */) => {
    for (const p of opts.protocols) if (offered.has(p)) return p;
    return false;
  },
});

wss.on('listening', () => {
  process.stdout.write(`READY ${wss.address().port}\n`);
});

wss.on('error', (err) => {
  log('server error:', err.message);
  process.exit(1);
});

wss.on('connection', (ws, req) => {
  const sock = req.socket;
  const base = { read: sock.bytesRead, written: sock.bytesWritten };

  ws.on('error', (err) => log('socket error:', err.message));
  ws.on('close', (code, reason) => log('closed', code, reason.toString()));

  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text.startsWith('cmd:')) {
        handleCommand(ws, req, text.slice(4), base);
        return;
      }
      ws.send(text, { binary: false });
      return;
    }
    ws.send(data, { binary: true });
  });
});

function handleCommand(ws, req, cmd, base) {
  const parts = cmd.split(':');
  switch (parts[0]) {
    case 'info': {
      ws.send(JSON.stringify({
        path: req.url,
        headers: req.headers,
        extensions: ws.extensions,
        protocol: ws.protocol,
        bytesRead: req.socket.bytesRead - base.read,
        bytesWritten: req.socket.bytesWritten - base.written,
      }));
      break;
    }
    case 'close': {
      const code = Number(parts[1]);
      const reason = parts.slice(2).join(':');
      ws.close(code, reason);
      break;
    }
    case 'ping': {
      const payload = parts.slice(1).join(':');
      ws.once('pong', (data) => ws.send(`pong:${data.toString('utf8')}`));
      ws.ping(Buffer.from(payload, 'utf8'));
      break;
    }
    case 'fragments': {
      const n = Number(parts[1]);
      const text = parts.slice(2).join(':');
      for (let i = 0; i < n; i++) ws.send(text, { binary: false, fin: i === n - 1 });
      break;
    }
    case 'binfragments': {
      const n = Number(parts[1]);
      const k = Number(parts[2]);
      const chunk = patternBytes(k, 256);
      for (let i = 0; i < n; i++) ws.send(chunk, { binary: true, fin: i === n - 1 });
      break;
    }
    case 'big': {
      ws.send(patternBytes(Number(parts[1]), 251), { binary: true });
      break;
    }
    case 'terminate': {
      ws.terminate();
      break;
    }
    default:
      ws.send(`error:unknown command ${cmd}`);
  }
}

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The test harness keeps stdin open; when it goes away, so do we (no orphan servers).
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
