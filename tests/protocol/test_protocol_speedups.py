"""The compiled accelerator and its pure-Python twin give the same bytes (RFC 6455 5.3)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.protocol import frames


@given(st.binary(max_size=4096), st.binary(min_size=4, max_size=4))
def test_rfc6455_5_3_masking_twins_agree(data: bytes, mask: bytes) -> None:
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert frames.py_apply_mask(data, mask) == expected
    assert frames.apply_mask(data, mask) == expected


def test_rfc6455_5_3_masking_accepts_buffers() -> None:
    data = bytearray(b"0123456789abcdef0")
    mask = b"\x01\x02\x03\x04"
    assert frames.apply_mask(memoryview(data)[1:], mask) == frames.py_apply_mask(data[1:], mask)


def test_masking_rejects_a_bad_key() -> None:
    with pytest.raises(ValueError):
        frames.serialize_frame(1, b"x", mask=b"abc")


@pytest.mark.skipif(os.environ.get("TETHER_PURE_PYTHON") == "1", reason="pure-Python run")
def test_the_compiled_accelerator_is_built_and_used() -> None:
    # `make test` builds the extension; a silent fallback would hide a slow build.
    assert frames.SPEEDUPS
    with pytest.raises(ValueError):
        frames.apply_mask(b"data", b"abc")


def _compiled() -> object:
    if not frames.SPEEDUPS:
        pytest.skip("the compiled accelerator is not in use")
    import tether._speedups as compiled  # type: ignore[import-not-found]

    return compiled


def _small_frames() -> st.SearchStrategy[bytes]:
    """Frames near the fast path's edges: valid ones, and ones it must leave alone."""
    header = st.tuples(
        st.sampled_from([0x81, 0x82, 0x01, 0x80, 0x88, 0x89, 0xC1, 0x83, 0x00]),
        st.booleans(),  # masked
        st.integers(min_value=0, max_value=130),  # payload length
    )

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        b0, masked, length = draw(header)
        text = draw(st.text(max_size=40)).encode()
        payload = (text + draw(st.binary(max_size=130)))[:length]
        length = len(payload)
        if draw(st.booleans()):
            payload = draw(st.binary(min_size=length, max_size=length))  # maybe bad UTF-8
        mask = draw(st.binary(min_size=4, max_size=4))
        frame = bytes([b0, (0x80 if masked else 0) | min(length, 127)])
        if masked:
            frame += mask + frames.py_apply_mask(payload, mask)
        else:
            frame += payload
        cut = draw(st.integers(min_value=-2, max_value=2))  # truncated or trailing bytes
        if cut < 0:
            frame = frame[:cut]
        elif cut > 0:
            frame += b"\x81\x00"[:cut]
        return frame

    return build()


@given(_small_frames(), st.booleans(), st.sampled_from([0, 1, 16, 125, 126, 2**20, 2**63]))
def test_the_small_frame_twins_agree(frame: bytes, masked: bool, limit: int) -> None:
    compiled = _compiled()
    expected = frames.py_parse_small_frame(frame, masked, limit)
    got = compiled.parse_small_frame(frame, masked, limit)  # type: ignore[attr-defined]
    assert got == expected
    assert type(got) is type(expected)
    assert compiled.parse_small_frame(memoryview(frame), masked, limit) == expected  # type: ignore[attr-defined]


def test_the_small_frame_parser_takes_only_one_whole_frame() -> None:
    mask = b"\x01\x02\x03\x04"
    text = frames.serialize_frame(1, "héllo".encode(), mask=mask)
    for parse in (frames.py_parse_small_frame, frames.parse_small_frame):
        assert parse(text, True, 100) == "héllo"
        assert parse(text, False, 100) is None  # the masking rule of the side
        assert parse(text, True, 5) is None  # over the limit: the general parser says so
        assert parse(text + b"\x81", True, 100) is None  # more than one frame
        assert parse(text[:-1], True, 100) is None  # not whole
        assert parse(frames.serialize_frame(2, b"\xff"), False, 100) == b"\xff"
        assert parse(frames.serialize_frame(1, b"\xff"), False, 100) is None  # bad UTF-8
        assert parse(frames.serialize_frame(1, b"x", fin=False), False, 100) is None
        assert parse(frames.serialize_frame(1, b"x" * 126), False, 1000) is None  # 16-bit length


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_the_server_frame_twins_agree(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    messages = (data[:size], "é" * (size // 2), bytearray(data[:size]), memoryview(data[:size]))
    for message in messages:
        expected = frames.py_encode_server_frame(message)  # type: ignore[arg-type]
        assert frames.encode_server_frame(message) == expected  # type: ignore[arg-type]
        assert type(frames.encode_server_frame(message)) is bytes  # type: ignore[arg-type]
    assert expected[0] == 0x82


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_the_server_frame_twins_agree_on_any_message(message: str | bytes) -> None:
    assert frames.encode_server_frame(message) == frames.py_encode_server_frame(message)


def test_a_lone_surrogate_cannot_be_sent_by_either_twin() -> None:
    for encode in (frames.py_encode_server_frame, frames.encode_server_frame):
        with pytest.raises(UnicodeEncodeError):
            encode("\ud800")
    for encode in (frames.py_encode_server_frame, frames.encode_server_frame):
        with pytest.raises(TypeError):
            encode(42)  # type: ignore[arg-type]
