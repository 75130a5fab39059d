// Node `ws` benchmark server: same behaviour as the Python servers (see common.py).
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, '..', 'node', 'node_modules', 'ws'));

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, tls: null };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--host') args.host = argv[++i];
    else if (argv[i] === '--port') args.port = Number(argv[++i]);
    else if (argv[i] === '--tls') args.tls = [argv[++i], argv[++i]];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.port) throw new Error('--port is required');
  return args;
}

const args = parseArgs(process.argv);
const server = args.tls
  ? https.createServer({ cert: fs.readFileSync(args.tls[0]), key: fs.readFileSync(args.tls[1]) })
  : http.createServer();
const wss = new WebSocketServer({
  server,
  perMessageDeflate: false,
  maxPayload: 16 * 1024 * 1024,
  clientTracking: true,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length > 7 && data.toString('latin1', 0, 7) === '!bcast ') {
      const [, count, size] = data.toString().split(' ');
      // ws has no broadcast helper; the documented idiom is a loop over wss.clients.
      const payload = Buffer.from('x'.repeat(Number(size)));
      for (let k = 0; k < Number(count); k++) {
        for (const client of wss.clients) {
          if (client.readyState === WebSocket.OPEN) client.send(payload, { binary: false });
        }
      }
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});

server.listen(args.port, args.host, () => {
  console.log(`ws listening on ${args.port}`);
});
process.on('SIGTERM', () => process.exit(0));
