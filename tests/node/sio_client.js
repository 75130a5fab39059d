#!/usr/bin/env node
// The official `socket.io-client`, driven line by line, for tether's Hub interop tests.
//
// Usage:
//   node sio_client.js URL [OPTIONS_JSON]
//
// URL is the server plus the namespace (http://127.0.0.1:PORT/custom). OPTIONS_JSON is an
// object; the keys below are ours, everything else goes to `io(URL, options)` unchanged
// (transports, auth, reconnectionDelay, ...):
//   scenario   "interactive" (default): read commands on stdin until it closes or "exit".
//   ackReply   what the client answers to a server event that asks for an ack:
//              "echo" (default: ["got:" + event, ...args]) or "none" (never answers).
//   timeout    ms before the watchdog exits the process (default 20000).
//
// Binary values travel as {"$bin": "<base64>"} in both directions (nested anywhere), so the
// Python side can send and check Buffers through JSON.
//
// Output: one JSON object per line on stdout, each with an "ev" key:
//   {"ev":"ready"}                                   the script runs, the socket is created
//   {"ev":"open","transport"}                        the Engine.IO session opened
//   {"ev":"connect","id","recovered","transport"}    (and again after each reconnection)
//   {"ev":"connect_error","message","data"}
//   {"ev":"disconnect","reason"}
//   {"ev":"upgrade","transport"}                     the Engine.IO transport was upgraded
//   {"ev":"reconnect","attempt"}
//   {"ev":"event","name","args","acked"}             a server event (onAny)
//   {"ev":"result","id","value"|"error"}             the answer to a command with an "id"
//
// Commands on stdin (one JSON object per line):
//   {"op":"emit","event","args":[...],"ack":true,"timeout":ms,"id"}
//        without "ack": fire and forget; with it: a "result" with the ack's args as value
//        (or "error" when it timed out).
//   {"op":"state","id"}          value: {connected, id, recovered, transport}
//   {"op":"disconnect","id"}     socket.disconnect()
//   {"op":"connect","id"}        socket.connect()
//   {"op":"exit"}
'use strict';

const { io } = require('socket.io-client');
const readline = require('readline');

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function encode(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString('base64') };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString('base64') };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  }
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === 'object') {
    const res = {};
    for (const [k, v] of Object.entries(value)) res[k] = encode(v);
    return res;
  }
  return value;
}

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$bin') return Buffer.from(value.$bin, 'base64');
    const res = {};
    for (const [k, v] of Object.entries(value)) res[k] = decode(v);
    return res;
  }
  return value;
}

function main() {
  const url = process.argv[2];
  if (!url) {
    process.stderr.write('usage: sio_client.js URL [OPTIONS_JSON]\n');
    process.exit(2);
  }
  let options = {};
  try {
    options = process.argv[3] ? JSON.parse(process.argv[3]) : {};
  } catch (err) {
    process.stderr.write(`sio_client.js: bad options: ${err.message}\n`);
    process.exit(2);
  }
  const scenario = options.scenario || 'interactive';
  const ackReply = options.ackReply || 'echo';
  const timeout = Number(options.timeout || 20000);
  delete options.scenario;
  delete options.ackReply;
  delete options.timeout;
  if (scenario !== 'interactive') {
    process.stderr.write(`sio_client.js: unknown scenario ${scenario}\n`);
    process.exit(2);
  }
  if (options.auth) options.auth = decode(options.auth);

  // Bounded no matter what the server does.
  const watchdog = setTimeout(() => {
    out({ ev: 'watchdog' });
    process.exit(1);
  }, timeout);
  watchdog.unref();

  const socket = io(url, options);
  const transportName = () => {
    const engine = socket.io.engine;
    return engine && engine.transport ? engine.transport.name : null;
  };

  // The Manager makes a new engine for each (re)connection: watch each one's upgrade.
  socket.io.on('open', () => {
    const engine = socket.io.engine;
    out({ ev: 'open', transport: transportName() });
    engine.on('upgrade', (transport) => out({ ev: 'upgrade', transport: transport.name }));
  });
  socket.on('connect', () => {
    out({ ev: 'connect', id: socket.id, recovered: Boolean(socket.recovered), transport: transportName() });
  });
  socket.on('connect_error', (err) => {
    out({ ev: 'connect_error', message: err.message, data: err.data === undefined ? null : encode(err.data) });
  });
  socket.on('disconnect', (reason) => out({ ev: 'disconnect', reason }));
  socket.io.on('reconnect', (attempt) => out({ ev: 'reconnect', attempt }));
  socket.onAny((name, ...args) => {
    let ack = null;
    if (args.length && typeof args[args.length - 1] === 'function') ack = args.pop();
    out({ ev: 'event', name, args: encode(args), acked: ack !== null && ackReply === 'echo' });
    if (ack !== null && ackReply === 'echo') ack(`got:${name}`, ...args);
  });

  const commands = {
    emit(cmd) {
      const args = decode(cmd.args || []);
      if (!cmd.ack) {
        socket.emit(cmd.event, ...args);
        if (cmd.id !== undefined) out({ ev: 'result', id: cmd.id, value: null });
        return;
      }
      const target = cmd.timeout ? socket.timeout(Number(cmd.timeout)) : socket;
      if (cmd.timeout) {
        target.emit(cmd.event, ...args, (err, ...reply) => {
          if (err) out({ ev: 'result', id: cmd.id, error: String(err.message || err) });
          else out({ ev: 'result', id: cmd.id, value: encode(reply) });
        });
      } else {
        target.emit(cmd.event, ...args, (...reply) => {
          out({ ev: 'result', id: cmd.id, value: encode(reply) });
        });
      }
    },
    state(cmd) {
      out({
        ev: 'result',
        id: cmd.id,
        value: {
          connected: socket.connected,
          id: socket.id === undefined ? null : socket.id,
          recovered: Boolean(socket.recovered),
          transport: transportName(),
        },
      });
    },
    disconnect(cmd) {
      socket.disconnect();
      if (cmd.id !== undefined) out({ ev: 'result', id: cmd.id, value: null });
    },
    connect(cmd) {
      socket.connect();
      if (cmd.id !== undefined) out({ ev: 'result', id: cmd.id, value: null });
    },
    exit() {
      socket.disconnect();
      process.exit(0);
    },
  };

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      out({ ev: 'bad_command', line });
      return;
    }
    const fn = commands[cmd.op];
    if (!fn) {
      out({ ev: 'result', id: cmd.id, error: `unknown op ${cmd.op}` });
      return;
    }
    try {
      fn(cmd);
    } catch (err) {
      out({ ev: 'result', id: cmd.id, error: String(err && err.message || err) });
    }
  });
  rl.on('close', () => {
    socket.disconnect();
    process.exit(0);
  });
  out({ ev: 'ready' });
}

main();
