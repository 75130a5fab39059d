"""Write the seed corpus: ``python -m fuzz.seeds`` (from the repository root).

Seeds are small, valid (or nearly valid) inputs of every target, so that the fuzzer
starts inside each grammar instead of having to guess ``GET / HTTP/1.1``. Files found by
fuzzing that crashed are added by hand as ``crash-<what>`` next to them; this script
leaves those alone and rewrites only its own ``seed-*`` files.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from tether.protocol.frames import serialize_close, serialize_frame

__all__ = ["SEEDS", "main"]

_MASK = b"\x01\x02\x03\x04"


def _deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def _frames() -> dict[str, bytes]:
    def server(*frames: bytes) -> bytes:  # cfg 0: server side, client frames are masked
        return b"\x00\x00" + b"".join(frames)

    def m(opcode: int, payload: bytes, **kw: bool) -> bytes:
        return serialize_frame(opcode, payload, mask=_MASK, **kw)

    bomb = _deflate(b"\x00" * 2**20)  # ~1 KiB that inflates to 1 MiB
    return {
        "text": server(m(1, b"hello")),
        "binary-126": server(m(2, bytes(range(200)))),
        "binary-64bit": server(m(2, b"x" * 70000)[:64]),
        "fragmented": server(m(1, b"he", fin=False), m(9, b"p"), m(0, b"llo")),
        "close": server(m(8, serialize_close(1000, "bye"))),
        "close-bad-code": server(m(8, serialize_close(1000)[:0] + b"\x03\xe7")),
        "bad-utf8": server(m(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")),
        "ping-pong": server(m(9, b"abc"), m(10, b"")),
        "deflate": b"\x02\x00" + m(1, _deflate(b"hello hello hello"), rsv1=True),
        "deflate-fragmented": b"\x0a\x03"
        + m(2, _deflate(b"abc" * 50)[:5], rsv1=True, fin=False)
        + m(0, _deflate(b"abc" * 50)[5:]),
        "deflate-bomb": b"\x12\x05" + m(2, bomb, rsv1=True),
        "client-text": b"\x01\x00" + serialize_frame(1, b"hi"),
        "client-deflate-close": b"\x03\x01"
        + serialize_frame(1, _deflate(b"x" * 300), rsv1=True)
        + serialize_frame(8, serialize_close(1001, "going")),
        "deferred": b"\x40\x02" + m(1, b"ok") + m(3, b""),
    }


_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_UPGRADE = (
    "GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nUpgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + _KEY + "\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: https://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
    'server_max_window_bits="10", x-webkit-deflate-frame\r\n\r\n'
)


def _http_request() -> dict[str, bytes]:
    return {
        "upgrade": b"\x37\x00" + _UPGRADE.encode() + b"\x81\x80\x00\x00\x00\x00",
        "upgrade-split": b"\x37\x11" + _UPGRADE.encode(),
        "post-body": b"\x08\x02POST /eio/?EIO=4&transport=polling HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 5\r\n\r\n4helloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "chunked": b"\x08\x00POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        "http10": b"\x00\x00GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n",
        "bad-key": b"\x10\x00" + _UPGRADE.replace(_KEY, "abc=").encode(),
    }


_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _http_response() -> dict[str, bytes]:
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " + _ACCEPT + "\r\n"
    )
    return {
        "101": b"\x00\x00" + (head + "\r\n").encode() + b"\x81\x02hi",
        "101-deflate": b"\x0c\x00"
        + (
            head + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: "
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10\r\n\r\n"
        ).encode(),
        "403": b"\x02\x03HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden",
        "chunked": b"\x01\x00HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    }


def _deflate_seeds() -> dict[str, bytes]:
    return {
        "inflate": b"\x00\x03" + _deflate(b"hello" * 20),
        "inflate-two": b"\x00\x13" + _deflate(b"a" * 100) + b"\x00\x00\xff\xff" + b"\x00",
        "bomb": b"\x00\x04" + _deflate(b"\x00" * 2**21),
        "bad-stream": b"\x00\x03\xff\xff\xff\xff",
        "round-trip": b"\x01\x01" + b"tether " * 30,
        "negotiate": b"\x02\x00permessage-deflate; client_max_window_bits; "
        b'server_max_window_bits="10", permessage-deflate\nfoo; bar=baz',
        "negotiate-nct": b"\x02\x01permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover; client_max_window_bits=9",
    }


def _engine() -> dict[str, bytes]:
    return {
        "message": b"\x004hello",
        "base64": b"\x00bAQIDBA==",
        "ping-probe": b"\x002probe",
        "binary": b"\x01\x00\x01\x02\xff",
        "payload": b"\x02\x034hello\x1e2\x1ebAQIDBA==\x1e6",
        "payload-limit": b"\x02\x006\x1e6\x1e6",
        "open": b'\x03{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
        b'"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
    }


def _socketio() -> dict[str, bytes]:
    return {
        "connect": b'\x0a0/admin,{"token":"abc"}',
        "event": b'\x0a2["foo",1,{"a":[true,null]}]\n212["foo"]',
        "ack": b'\x0a3/admin,13["bar"]\n30[]',
        "binary-event": b'\x0a51-["baz",{"_placeholder":true,"num":0}]\n\x00\x01\x02\x03',
        "binary-ack": b'\x0a6/x,2-7[{"_placeholder":true,"num":1},'
        b'{"_placeholder":true,"num":0}]\n\x00ab\n\x00cd',
        "connect-error": b'\x0a4{"message":"Not authorized"}\n4"no"',
        "disconnect": b"\x0a1/admin,\n1",
        "errors": b'\x0a5\n2["connect"]\n\x00x\n8\n2[NaN]\n21["\\ud800"]',
    }


SEEDS = {
    "frames": _frames,
    "http_request": _http_request,
    "http_response": _http_response,
    "deflate": _deflate_seeds,
    "engine": _engine,
    "socketio": _socketio,
}


def main() -> None:
    """Rewrite ``fuzz/corpus/<target>/seed-*``."""
    root = Path(__file__).resolve().parent / "corpus"
    for target, make in SEEDS.items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in make().items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
