"""picows benchmark server (callback API; no broadcast helper: send to each in turn)."""

from __future__ import annotations

import uvloop
from common import MAX_SIZE, parse_args, parse_bcast, ready, ssl_context
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

CLIENTS: set[WSTransport] = set()


class EchoListener(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        CLIENTS.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        CLIENTS.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # The load generator never fragments, so one frame is one message.
        if frame.msg_type == WSMsgType.TEXT:
            text = frame.get_payload_as_utf8_text()
            command = parse_bcast(text)
            if command is not None:
                count, payload = command
                data = payload.encode()
                for _ in range(count):
                    for client in CLIENTS:
                        client.send(WSMsgType.TEXT, data)
                return
            transport.send(WSMsgType.TEXT, frame.get_payload_as_memoryview())
        elif frame.msg_type == WSMsgType.BINARY:
            transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def main() -> None:
    args = parse_args("picows")
    server = await ws_create_server(
        lambda _request: EchoListener(),
        args.host,
        args.port,
        max_frame_size=MAX_SIZE,
        ssl=ssl_context(args),
    )
    ready("picows", args.port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
