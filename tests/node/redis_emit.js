// Publishes through the official @socket.io/redis-emitter, for tests/broker/test_emitter_interop.py.
// Usage: node redis_emit.js <redis url> <key>. Prints one JSON line when every message is sent.
"use strict";
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

async function main() {
  const [url, key] = process.argv.slice(2);
  const client = createClient({ url });
  await client.connect();
  const io = new Emitter(client, { key }).of("/chat");
  io.to("r1").emit("single", "text", 42, 1.5, null, Buffer.from([0, 1, 255]), { nested: [true] });
  io.to("r1").to("r2").except("x").emit("multi", { a: 1 });
  io.to("r9").emit("nobody");
  io.emit("all", "x");
  io.except("muted").emit("all-but", 2);
  io.volatile.to("r1").emit("vol");
  io.in("r1").socketsJoin(["j1", "j2"]);
  io.except("x").socketsLeave("l1");
  io.in("r2").disconnectSockets(true);
  io.serverSideEmit("sse", 1, "two");
  new Emitter(client, { key }).of("/other").to("r1").emit("other-namespace");
  io.to("r1").emit("done");
  await client.quit(); // sends what the emitter queued, then closes
  console.log(JSON.stringify({ ok: true }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
