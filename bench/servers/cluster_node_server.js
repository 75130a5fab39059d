// The official Node socket.io server with @socket.io/redis-adapter, one node of a
// cluster, for bench/cluster.py. Same events as cluster_tether_server.py (join, pub,
// stats; stats acks {}: the bytes come from Redis's CLIENT LIST).
'use strict';
const http = require('http');
const path = require('path');
const mods = path.join(__dirname, '..', 'node', 'node_modules');
const { Server } = require(path.join(mods, 'socket.io'));
const { createAdapter } = require(path.join(mods, '@socket.io', 'redis-adapter'));
const { createClient } = require(path.join(mods, 'redis'));

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, redis: 'redis://127.0.0.1:6379/0', prefix: '' };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--host') args.host = argv[++i];
    else if (argv[i] === '--port') args.port = Number(argv[++i]);
    else if (argv[i] === '--redis') args.redis = argv[++i];
    else if (argv[i] === '--prefix') args.prefix = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.port || !args.prefix) throw new Error('--port and --prefix are required');
  return args;
}

async function main() {
  const args = parseArgs(process.argv);
  const pubClient = createClient({ url: args.redis });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pubClient, subClient, { key: args.prefix }) });
  io.on('connection', (socket) => {
    socket.on('join', (room, ack) => {
      socket.join(room);
      if (typeof ack === 'function') ack(true);
    });
    socket.on('pub', (room, payload, ack) => {
      io.to(room).emit('m', payload);
      if (typeof ack === 'function') ack(true);
    });
    socket.on('stats', (ack) => {
      if (typeof ack === 'function') ack({});
    });
  });
  httpServer.listen(args.port, args.host, () => {
    console.log(`cluster-socket.io listening on ${args.port}`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
