#!/usr/bin/env node
// A reference Socket.IO v5 server (the official `socket.io` package) for client tests.
//
// Usage:
//   node sio_reference_server.js --port P [--host 127.0.0.1]
//        [--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES]
//        [--transports polling,websocket] [--refuse-websocket]
//        [--recovery] [--reject-token TOKEN]
//
// Prints "READY <port>" on stdout once listening (P may be 0). Exits on SIGTERM/SIGINT or
// when stdin closes.
//
// Options:
//   --refuse-websocket   announce the websocket upgrade but answer every WebSocket request
//                        with HTTP 403, like a proxy that does not pass upgrades
//   --recovery           connectionStateRecovery on (broadcasts carry an offset)
//   --reject-token T     the middleware of every namespace refuses auth.token === T with
//                        the error "not authorized" (data: {reason: "bad token"})
//
// The namespaces "/" and "/chat" answer the same events:
//   echo(...args[, ack])        -> ack(...args), or without an ack emit("echo", ...args)
//   info(ack)                   -> ack({id, nsp, auth, transport, recovered})
//   auth-log(ack)               -> ack(list of {nsp, auth} seen by the middleware)
//   ask(...args, ack)           -> emitWithAck("question", ...args) to the client; ack(answer)
//   broadcast(event, ...args[, ack]) -> namespace-wide emit(event, ...args); ack()
//   received(ack)               -> ack(list of [event, ...args] of "log" events received)
//   log(...args[, ack])         -> appended to the received list; ack(count)
//   flaky(id, ack)              -> acks only from the 2nd delivery of `id` on: ack(deliveries)
//   close-engine()              -> socket.conn.close() (the client sees the transport close)
//   server-disconnect()         -> socket.disconnect() (the client must not reconnect)
//   upgrade-count(ack)          -> ack(number of completed transport upgrades)
'use strict';

const http = require('http');
const { Server } = require('socket.io');

function parseArgs(argv) {
  const opts = {
    port: 0,
    host: '127.0.0.1',
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1e6,
    transports: ['polling', 'websocket'],
    refuseWebsocket: false,
    recovery: false,
    rejectToken: null,
  };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case '--port': opts.port = Number(argv[++i]); break;
      case '--host': opts.host = argv[++i]; break;
      case '--ping-interval': opts.pingInterval = Number(argv[++i]); break;
      case '--ping-timeout': opts.pingTimeout = Number(argv[++i]); break;
      case '--max-payload': opts.maxPayload = Number(argv[++i]); break;
      case '--transports': opts.transports = argv[++i].split(',').filter(Boolean); break;
      case '--refuse-websocket': opts.refuseWebsocket = true; break;
      case '--recovery': opts.recovery = true; break;
      case '--reject-token': opts.rejectToken = argv[++i]; break;
      default: throw new Error(`unknown argument: ${argv[i]}`);
    }
  }
  return opts;
}

function log(...args) {
  process.stderr.write(`[sio_reference_server] ${args.join(' ')}\n`);
}

const opts = parseArgs(process.argv.slice(2));
const httpServer = http.createServer();
const serverOptions = {
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  transports: opts.transports,
};
if (opts.recovery) {
  serverOptions.connectionStateRecovery = { maxDisconnectionDuration: 60000, skipMiddlewares: true };
}
const io = new Server(httpServer, serverOptions);
if (opts.refuseWebsocket) {
  // Like a proxy that does not pass upgrades: the handshake still announces "websocket".
  httpServer.removeAllListeners('upgrade');
  httpServer.on('upgrade', (req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
}

const authSeen = [];
const received = [];
const deliveries = new Map();
let upgrades = 0;

io.engine.on('connection', (conn) => {
  conn.on('upgrade', () => { upgrades += 1; });
});

function popAck(args) {
  return typeof args[args.length - 1] === 'function' ? args.pop() : null;
}

function setup(nsp) {
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth;
    authSeen.push({ nsp: nsp.name, auth });
    if (opts.rejectToken !== null && auth && auth.token === opts.rejectToken) {
      const err = new Error('not authorized');
      err.data = { reason: 'bad token' };
      next(err);
      return;
    }
    next();
  });
  nsp.on('connection', (socket) => {
    log(`connection ${nsp.name} ${socket.id} recovered=${socket.recovered}`);
    socket.on('echo', (...args) => {
      const ack = popAck(args);
      if (ack) ack(...args);
      else socket.emit('echo', ...args);
    });
    socket.on('info', (ack) => {
      ack({
        id: socket.id,
        nsp: nsp.name,
        auth: socket.handshake.auth,
        transport: socket.conn.transport.name,
        recovered: socket.recovered,
      });
    });
    socket.on('auth-log', (ack) => ack(authSeen));
    socket.on('ask', async (...args) => {
      const ack = popAck(args);
      try {
        const answer = await socket.timeout(10000).emitWithAck('question', ...args);
        if (ack) ack(answer);
      } catch (err) {
        if (ack) ack({ error: String(err) });
      }
    });
    socket.on('broadcast', (event, ...args) => {
      const ack = popAck(args);
      nsp.emit(event, ...args);
      if (ack) ack();
    });
    socket.on('log', (...args) => {
      const ack = popAck(args);
      received.push(args);
      if (ack) ack(received.length);
    });
    socket.on('received', (ack) => ack(received));
    socket.on('flaky', (id, ack) => {
      const n = (deliveries.get(id) || 0) + 1;
      deliveries.set(id, n);
      if (n >= 2 && typeof ack === 'function') ack(n);
    });
    socket.on('close-engine', () => socket.conn.close());
    socket.on('server-disconnect', () => socket.disconnect());
    socket.on('upgrade-count', (ack) => ack(upgrades));
  });
}

setup(io.of('/'));
setup(io.of('/chat'));

httpServer.listen(opts.port, opts.host, () => {
  process.stdout.write(`READY ${httpServer.address().port}\n`);
});

function shutdown() {
  io.close();
  httpServer.close();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
