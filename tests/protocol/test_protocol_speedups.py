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
