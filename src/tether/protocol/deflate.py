"""RFC 7692 permessage-deflate: negotiation and the per-message codec."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..exceptions import NegotiationError, PayloadTooBig, ProtocolError

__all__ = [
    "DeflateOptions",
    "PerMessageDeflate",
    "client_accept_response",
    "client_offer",
    "parse_extensions",
    "server_accept_offers",
]

EXTENSION_NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: removed after compressing, added before inflating
_PARAMS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)


@dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What this side asks for or accepts in permessage-deflate.

    Attributes:
        server_no_context_takeover: the server resets its compressor after each message.
        client_no_context_takeover: the client resets its compressor after each message.
        server_max_window_bits: the LZ77 window of the server's compressor (9-15), or None.
        client_max_window_bits: the LZ77 window of the client's compressor (9-15), or None.
        threshold: messages shorter than this many bytes are sent uncompressed.
        level: zlib compression level (1-9).
        mem_level: zlib memory level (1-9); lower uses less memory per connection.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    threshold: int = 128
    level: int = 6
    mem_level: int = 8

    def __post_init__(self) -> None:
        for name in ("server_max_window_bits", "client_max_window_bits"):
            value = getattr(self, name)
            if value is not None and not 9 <= value <= 15:
                # 8 is legal on the wire, but zlib cannot compress raw deflate with it.
                raise ValueError(f"{name} must be between 9 and 15")
        if not 1 <= self.level <= 9 or not 1 <= self.mem_level <= 9:
            raise ValueError("level and mem_level must be between 1 and 9")
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")


class PerMessageDeflate:
    """The negotiated codec of one connection.

    Args:
        local_no_context_takeover: reset our compressor after each message.
        remote_no_context_takeover: the peer resets its compressor after each message.
        local_max_window_bits: the window we compress with (8 means: never compress,
            because zlib cannot produce an 8-bit raw deflate stream; sending messages
            uncompressed is always allowed by RFC 7692).
        options: the local options (threshold, level, memory level).
    """

    __slots__ = (
        "_decoder",
        "_encoder",
        "_level",
        "_local_nct",
        "_mem_level",
        "_remote_nct",
        "_wbits",
        "can_compress",
        "params",
        "threshold",
    )

    def __init__(
        self,
        *,
        local_no_context_takeover: bool,
        remote_no_context_takeover: bool,
        local_max_window_bits: int,
        options: DeflateOptions,
        params: str = EXTENSION_NAME,
    ) -> None:
        self._local_nct = local_no_context_takeover
        self._remote_nct = remote_no_context_takeover
        self._wbits = local_max_window_bits
        self._level = options.level
        self._mem_level = options.mem_level
        self.threshold = options.threshold
        self.can_compress = local_max_window_bits >= 9
        self.params = params
        self._encoder: zlib._Compress | None = None
        # Inflating with the largest window decodes any window the peer used (RFC 7692 7.1.2).
        self._decoder = zlib.decompressobj(wbits=-15)

    def compress(self, data: bytes, *, fin: bool = True) -> bytes:
        """Compress one message (or one fragment of it, ``fin`` on the last)."""
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = zlib.compressobj(
                self._level, zlib.DEFLATED, -self._wbits, self._mem_level
            )
        out = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            if out.endswith(_TAIL):
                out = out[:-4]
            if self._local_nct:
                self._encoder = None
            if not out:
                # RFC 7692 7.2.3.6: an empty message is sent as a single 0x00 byte.
                out = b"\x00"
        return out

    def decompress(self, data: bytes, limit: int) -> bytes:
        """Inflate a chunk of a compressed message.

        Raises:
            PayloadTooBig: the inflated data would exceed ``limit`` bytes.
            ProtocolError: the data is not a valid deflate stream (close code 1007).
        """
        try:
            # zlib's max_length is a C long; 0 means "no limit".
            out = self._decoder.decompress(data, limit + 1 if limit < 2**62 else 0)
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from exc
        if len(out) > limit or self._decoder.unconsumed_tail:
            too_big = PayloadTooBig("decompressed message exceeds the size limit")
            # What fits, so that the caller can check it first (invalid UTF-8 within the
            # limit is reported the same however the frame was split).
            too_big.partial = out[:limit]
            raise too_big
        return out

    def end_message(self, limit: int) -> bytes:
        """Finish inflating a message (adds the RFC 7692 7.2.2 tail)."""
        out = self.decompress(_TAIL, limit)
        if self._remote_nct:
            self._decoder = zlib.decompressobj(wbits=-15)
        return out


def _split_quoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_extensions(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse ``Sec-WebSocket-Extensions`` header values (RFC 6455 9.1).

    Raises:
        NegotiationError: the header is malformed.
    """
    result: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        for item in _split_quoted(value, ","):
            if not item.strip():
                continue
            pieces = [p.strip() for p in _split_quoted(item, ";")]
            name = pieces[0]
            if not name or not _is_token(name):
                raise NegotiationError(f"malformed extension: {item.strip()!r}")
            params: list[tuple[str, str | None]] = []
            for piece in pieces[1:]:
                if "=" in piece:
                    key, _, val = piece.partition("=")
                    key, val = key.strip(), val.strip()
                    if len(val) >= 2 and val[0] == val[-1] == '"':
                        val = val[1:-1]
                    params.append((key, val))
                else:
                    key = piece
                    params.append((key, None))
                if not _is_token(key):
                    raise NegotiationError(f"malformed extension parameter: {piece!r}")
            result.append((name, params))
    return result


def _is_token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in text)


def _window_bits(value: str | None) -> int:
    # RFC 7692 7.1.2: a decimal integer 8..15 without leading zeroes.
    if value is None or not value.isascii() or not value.isdigit() or value[0] == "0":
        raise NegotiationError(f"invalid window bits: {value!r}")
    if not 8 <= int(value) <= 15:
        raise NegotiationError(f"invalid window bits: {value!r}")
    return int(value)


def _check_params(params: list[tuple[str, str | None]]) -> dict[str, str | None]:
    seen: dict[str, str | None] = {}
    for key, value in params:
        if key not in _PARAMS:
            raise NegotiationError(f"unknown permessage-deflate parameter {key!r}")
        if key in seen:
            raise NegotiationError(f"duplicate permessage-deflate parameter {key!r}")
        if key.endswith("no_context_takeover") and value is not None:
            raise NegotiationError(f"{key} takes no value")
        seen[key] = value
    return seen


def server_accept_offers(
    offers: list[tuple[str, list[tuple[str, str | None]]]], options: DeflateOptions
) -> PerMessageDeflate | None:
    """Pick the first acceptable permessage-deflate offer (RFC 7692 5 and 7.1).

    Returns:
        The codec (its ``params`` is the response header value), or None to decline.
    """
    for name, params in offers:
        if name != EXTENSION_NAME:
            continue
        try:
            seen = _check_params(params)
            offered_server_wbits = (
                _window_bits(seen["server_max_window_bits"])
                if "server_max_window_bits" in seen
                else None
            )
            offered_client_wbits: int | None = None
            if "client_max_window_bits" in seen and seen["client_max_window_bits"] is not None:
                offered_client_wbits = _window_bits(seen["client_max_window_bits"])
        except NegotiationError:
            continue  # RFC 7692 5: decline an invalid offer, try the next one
        response = [EXTENSION_NAME]
        server_nct = options.server_no_context_takeover or "server_no_context_takeover" in seen
        if server_nct:
            response.append("server_no_context_takeover")
        client_nct = options.client_no_context_takeover or "client_no_context_takeover" in seen
        if client_nct:
            response.append("client_no_context_takeover")
        server_wbits = 15
        if offered_server_wbits is not None:
            server_wbits = min(offered_server_wbits, options.server_max_window_bits or 15)
            response.append(f"server_max_window_bits={server_wbits}")
        elif options.server_max_window_bits is not None:
            server_wbits = options.server_max_window_bits
            response.append(f"server_max_window_bits={server_wbits}")
        if "client_max_window_bits" in seen and options.client_max_window_bits is not None:
            value = min(offered_client_wbits or 15, options.client_max_window_bits)
            response.append(f"client_max_window_bits={value}")
        return PerMessageDeflate(
            local_no_context_takeover=server_nct,
            remote_no_context_takeover=client_nct,
            local_max_window_bits=server_wbits,
            options=options,
            params="; ".join(response),
        )
    return None


def client_offer(options: DeflateOptions) -> str:
    """The ``Sec-WebSocket-Extensions`` value a client sends."""
    parts = [EXTENSION_NAME]
    if options.server_no_context_takeover:
        parts.append("server_no_context_takeover")
    if options.client_no_context_takeover:
        parts.append("client_no_context_takeover")
    if options.server_max_window_bits is not None:
        parts.append(f"server_max_window_bits={options.server_max_window_bits}")
    if options.client_max_window_bits is not None:
        parts.append(f"client_max_window_bits={options.client_max_window_bits}")
    else:
        # RFC 7692 7.1.2.2: the bare parameter lets the server pick our window (8-15).
        parts.append("client_max_window_bits")
    return "; ".join(parts)


def client_accept_response(values: list[str], options: DeflateOptions) -> PerMessageDeflate | None:
    """Check the server's ``Sec-WebSocket-Extensions`` answer to our offer.

    Raises:
        NegotiationError: the server accepted something we did not offer, or badly.
    """
    accepted = parse_extensions(values)
    if not accepted:
        return None
    if len(accepted) > 1:
        raise NegotiationError("the server accepted more than one extension")
    name, params = accepted[0]
    if name != EXTENSION_NAME:
        raise NegotiationError(f"the server accepted an extension we did not offer: {name}")
    seen = _check_params(params)
    if "server_max_window_bits" in seen:
        wbits = _window_bits(seen["server_max_window_bits"])
        if options.server_max_window_bits is not None and wbits > options.server_max_window_bits:
            raise NegotiationError("server_max_window_bits larger than offered")
    if options.server_no_context_takeover and "server_no_context_takeover" not in seen:
        raise NegotiationError("the server ignored server_no_context_takeover")
    client_wbits = 15
    if "client_max_window_bits" in seen:
        # We always offer it: bare (any value 8-15) or with our limit.
        client_wbits = _window_bits(seen["client_max_window_bits"])
        limit = options.client_max_window_bits
        if limit is not None and client_wbits > limit:
            raise NegotiationError("client_max_window_bits larger than offered")
    elif options.client_max_window_bits is not None:
        client_wbits = options.client_max_window_bits
    client_nct = options.client_no_context_takeover or "client_no_context_takeover" in seen
    return PerMessageDeflate(
        local_no_context_takeover=client_nct,
        remote_no_context_takeover="server_no_context_takeover" in seen,
        local_max_window_bits=client_wbits,
        options=options,
        params=values[0] if len(values) == 1 else ", ".join(values),
    )
