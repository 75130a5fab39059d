"""tether Socket.IO benchmark server (the ``Hub``), on uvloop.

Same behaviour as the other Socket.IO servers (``sio_pysocketio_server.py``,
``sio_node_server.js``), written the way the documentation shows:

- ``echo``: emit ``echo`` back to the sender with the same arguments;
- ``join`` with a room name: join the room and acknowledge (``true``);
- ``bcast`` with (room, count, size): emit ``count`` events ``m`` carrying a string of
  ``size`` bytes to everyone in the room (the sender too, if it is in the room).

Default Engine.IO settings (ping every 25 s, both transports allowed); the load generator
uses the WebSocket transport only and offers no compression.
"""

from __future__ import annotations

from typing import Any

from common import parse_args, ready

import tether
from tether.realtime import Hub, Socket

hub = Hub()


@hub.on("echo")
async def echo(socket: Socket, *args: Any) -> None:
    await socket.emit("echo", *args)


@hub.on("join")
async def join(socket: Socket, room: str) -> bool:
    socket.join(room)
    return True


@hub.on("bcast")
async def bcast(socket: Socket, room: str, count: int, size: int) -> None:
    payload = "x" * size
    for _ in range(count):
        await hub.to(room).emit("m", payload)


async def main() -> None:
    args = parse_args("tether Socket.IO")
    server = await hub.serve(args.host, args.port)
    ready("tether-sio", args.port)
    await server.serve_forever()


if __name__ == "__main__":
    tether.run(main())
