// The official Node socket.io server: same behaviour as sio_tether_server.py
// (echo, join + ack, bcast), written the way socket.io's documentation shows.
// Default settings (perMessageDeflate off, ping every 25 s, both transports allowed).
'use strict';
const http = require('http');
const path = require('path');
const { Server } = require(path.join(__dirname, '..', 'node', 'node_modules', 'socket.io'));

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0 };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--host') args.host = argv[++i];
    else if (argv[i] === '--port') args.port = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.port) throw new Error('--port is required');
  return args;
}

const args = parseArgs(process.argv);
const httpServer = http.createServer();
const io = new Server(httpServer);

io.on('connection', (socket) => {
  socket.on('echo', (...rest) => {
    socket.emit('echo', ...rest);
  });
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack(true);
  });
  socket.on('bcast', (room, count, size) => {
    const payload = 'x'.repeat(size);
    for (let k = 0; k < count; k++) io.to(room).emit('m', payload);
  });
});

httpServer.listen(args.port, args.host, () => {
  console.log(`socket.io listening on ${args.port}`);
});
process.on('SIGTERM', () => process.exit(0));
