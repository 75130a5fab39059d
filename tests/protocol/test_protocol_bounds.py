"""Bounded memory in the sans-I/O core: undelivered bytes, fragments, frame budget, pongs."""

from __future__ import annotations

import tracemalloc

import pytest

from tether.protocol import BinaryMessage, Connection, Side, serialize_frame
from tether.protocol.events import Ping, TextMessage

MASK = b"\x01\x02\x03\x04"


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    return serialize_frame(opcode, payload, fin=fin, mask=MASK)


def drain(conn: Connection) -> list[object]:
    events: list[object] = list(conn.events_received())
    while conn.stalled:
        conn.receive_data(b"")
        events += conn.events_received()
    return events


def test_parsing_stalls_at_max_queue_bytes_and_resumes() -> None:
    conn = Connection(Side.SERVER, max_queue_bytes=1000)
    conn.receive_data(b"".join(client_frame(0x2, b"x" * 500) for _ in range(10)))
    assert len(conn.events_received()) == 2
    assert conn.stalled
    conn.held_bytes = 1000  # the caller still holds them: nothing more is parsed
    conn.receive_data(b"")
    assert conn.events_received() == []
    conn.held_bytes = 0
    conn.receive_data(b"")
    assert len(conn.events_received()) == 2


def test_one_message_over_the_bound_still_passes() -> None:
    conn = Connection(Side.SERVER, max_size=10_000, max_queue_bytes=100)
    parts = [client_frame(0x2, b"y" * 1000, fin=False)]
    parts += [client_frame(0x0, b"y" * 1000, fin=False) for _ in range(8)]
    parts.append(client_frame(0x0, b"y" * 1000))
    conn.receive_data(b"".join(parts))
    assert drain(conn) == [BinaryMessage(b"y" * 10_000)]


def test_frame_budget_per_call() -> None:
    conn = Connection(Side.SERVER, frames_per_call=100)
    conn.receive_data(b"".join(client_frame(0x1, b"t") for _ in range(1000)))
    assert len(conn.events_received()) == 100
    assert conn.stalled
    assert len(drain(conn)) == 900


def test_tiny_fragments_use_memory_of_the_message_not_of_the_fragments() -> None:
    count = 200_000
    data = client_frame(0x1, b"ab", fin=False)
    data += client_frame(0x0, b"ab", fin=False) * (count - 2) + client_frame(0x0, b"ab")
    conn = Connection(Side.SERVER, max_size=None)
    tracemalloc.start()
    try:
        conn.receive_data(data[: len(data) - 8])  # all but the last fragment
        while conn.stalled:
            conn.receive_data(b"")
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 400 KB of message; one object per fragment held 200,000 objects (about 7 MB).
    assert held < 2 * 2**20, held
    conn.receive_data(data[len(data) - 8 :])
    assert drain(conn) == [TextMessage("ab" * count)]


def test_held_pongs_answer_only_the_most_recent_ping() -> None:
    conn = Connection(Side.SERVER)
    conn.hold_pongs = True
    conn.receive_data(b"".join(client_frame(0x9, b"%d" % i) for i in range(1000)))
    assert len([e for e in conn.events_received() if isinstance(e, Ping)]) == 1000
    assert conn.data_to_send() == []
    assert conn.pongs_coalesced == 999
    conn.release_pongs()
    assert conn.data_to_send() == [serialize_frame(0xA, b"999")]


def test_pongs_are_all_sent_when_not_held() -> None:
    conn = Connection(Side.SERVER)
    conn.receive_data(b"".join(client_frame(0x9, b"%d" % i) for i in range(10)))
    assert b"".join(conn.data_to_send()) == b"".join(
        serialize_frame(0xA, b"%d" % i) for i in range(10)
    )


@pytest.mark.parametrize("value", [0, -1])
def test_bad_limits_raise(value: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Connection(Side.SERVER, max_queue_bytes=value)
    with pytest.raises(ValueError, match="at least 1"):
        Connection(Side.SERVER, frames_per_call=value)
