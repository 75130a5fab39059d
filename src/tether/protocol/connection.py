"""The RFC 6455 connection state machine, sans I/O.

Feed bytes with :meth:`Connection.receive_data`, read :meth:`Connection.events_received`,
send with ``send_*`` and write :meth:`Connection.data_to_send` to the network. Every state
transition of a WebSocket connection lives in this module.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Callable

from ..exceptions import InvalidState, PayloadTooBig, ProtocolError
from .deflate import PerMessageDeflate
from .events import BinaryMessage, CloseReceived, Event, Ping, Pong, TextMessage
from .frames import (
    CloseCode,
    MaskSource,
    Opcode,
    apply_mask,
    encode_server_frame,
    is_valid_close_code,
    parse_small_frame,
    serialize_close,
    serialize_frame,
)

# encode_server_frame is re-exported: it is the frame prepare_broadcast() shares.
__all__ = [
    "DEFAULT_FRAMES_PER_CALL",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_SIZE",
    "Connection",
    "Side",
    "State",
    "encode_server_frame",
]

DEFAULT_MAX_SIZE = 2**20
#: Undelivered message bytes (after decompression) at which parsing stops: see Connection.
DEFAULT_MAX_QUEUE_BYTES = 2**22
#: Frames parsed by one receive_data() call before the rest waits: see Connection.
DEFAULT_FRAMES_PER_CALL = 4096
_MAX_CONTROL = 125  # RFC 6455 5.5
_TEXT = Opcode.TEXT.value
_BINARY = Opcode.BINARY.value
_CONT = Opcode.CONTINUATION.value
_CLOSE = Opcode.CLOSE.value
_PING = Opcode.PING.value
_PONG = Opcode.PONG.value
_DATA_OPCODES = frozenset({_CONT, _TEXT, _BINARY})
_CONTROL_OPCODES = frozenset({_CLOSE, _PING, _PONG})
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class Side(enum.Enum):
    """Which end of the connection this is."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.IntEnum):
    """Connection states; the values match the WHATWG ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# Enum members read on every message, as module constants: on Python 3.11 each
# `Enum.MEMBER` lookup costs about 60 ns (EnumType.__getattr__ slows every class
# attribute lookup), a plain global about 10.
_CLIENT = Side.CLIENT
_CLOSED = State.CLOSED
_CLOSING = State.CLOSING
_CONNECTING = State.CONNECTING


_OPEN = State.OPEN  # a module constant: read on every message sent


class Connection:
    """One WebSocket connection after the opening handshake.

    Args:
        side: CLIENT masks what it sends and rejects masked frames; SERVER the reverse.
        max_size: the largest message accepted, in bytes (after decompression); None for
            no limit. Exceeding it fails the connection with 1009.
        max_frame_size: the largest frame accepted; defaults to ``max_size``.
        deflate: the negotiated permessage-deflate codec, if any.
        mask_source: a callable returning 4-byte masking keys (clients only; for tests).
        max_queue_bytes: the bytes of complete messages (after decompression) that may
            wait undelivered, counting those in :meth:`events_received` and
            :attr:`held_bytes` (what the caller still holds); 4 MiB by default, None for
            no limit. Once reached, parsing stops at the next frame boundary and the
            input stays in the buffer, compressed, until the caller drains (then calls
            ``receive_data(b"")``); :attr:`stalled` says so. A message in progress always
            completes, so one message of ``max_size`` passes whatever this bound is:
            at most ``max_queue_bytes + max_size`` are held.
        frames_per_call: the most frames one :meth:`receive_data` call parses (4096 by
            default); the rest waits in the buffer (:attr:`stalled`), so a batch of
            millions of tiny frames is handled in slices and cannot hold an event loop.

    Raises:
        ValueError: ``max_queue_bytes`` or ``frames_per_call`` below 1.
    """

    __slots__ = (
        "_buf",
        "_discard",
        "_events",
        "_frame_fin",
        "_frame_mask",
        "_frames_left",
        "_inflated",
        "_is_client",
        "_mask",
        "_mask_offset",
        "_msg_buf",
        "_msg_compressed",
        "_msg_opcode",
        "_msg_size",
        "_out",
        "_pending_bytes",
        "_pong",
        "_remaining",
        "_send_compressed",
        "_send_opcode",
        "_utf8",
        "close_rcvd",
        "close_sent",
        "defer_failures",
        "deflate",
        "eof_received",
        "failure",
        "frames_per_call",
        "held_bytes",
        "hold_pongs",
        "max_frame_size",
        "max_queue_bytes",
        "max_size",
        "pending_failure",
        "pongs_coalesced",
        "side",
        "stalled",
        "state",
    )

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_frame_size: int | None = None,
        deflate: PerMessageDeflate | None = None,
        mask_source: Callable[[], bytes] | None = None,
        max_queue_bytes: int | None = DEFAULT_MAX_QUEUE_BYTES,
        frames_per_call: int = DEFAULT_FRAMES_PER_CALL,
    ) -> None:
        if max_queue_bytes is not None and max_queue_bytes < 1:
            raise ValueError("max_queue_bytes must be at least 1")
        if frames_per_call < 1:
            raise ValueError("frames_per_call must be at least 1")
        self.side = side
        self.state = _OPEN
        self.max_size = max_size if max_size is not None else 2**63
        self.max_frame_size = max_frame_size if max_frame_size is not None else self.max_size
        self.deflate = deflate
        self._is_client = side is _CLIENT
        self._mask = (mask_source or MaskSource()) if self._is_client else None
        # incoming
        self._buf = bytearray()
        self._discard = False
        self._remaining = 0  # payload bytes left in the current data frame
        self._frame_mask: bytes | None = None
        self._mask_offset = 0
        self._frame_fin = True
        self._msg_opcode = 0  # 0: no message in progress
        self._msg_compressed = False
        # One growing buffer per message: memory follows the message's bytes, not its
        # number of fragments (text is validated piece by piece, decoded once at the end).
        # Empty bytes (shared) until a message needs it: idle connections hold no buffer.
        self._msg_buf: bytes | bytearray = b""
        self._msg_size = 0
        self._inflated = 0  # bytes inflated so far in the current compressed message
        self._utf8: codecs.IncrementalDecoder | None = None
        self._events: list[Event] = []
        self.max_queue_bytes = max_queue_bytes if max_queue_bytes is not None else 2**63
        self.frames_per_call = frames_per_call
        self._frames_left = frames_per_call
        #: Bytes of message events not yet returned by events_received().
        self._pending_bytes = 0
        #: Bytes of messages the caller holds (its own queue); it keeps this up to date,
        #: so that the bound covers every queue on the path.
        self.held_bytes = 0
        #: Parsing stopped with input left in the buffer (the byte bound or the frame
        #: budget of one call): call ``receive_data(b"")`` to go on.
        self.stalled = False
        #: While True (the caller's write buffer is full: the peer does not read), pings
        #: are answered only once, for the most recent one (RFC 6455 5.5.3), when the
        #: caller sets it back with :meth:`release_pongs`.
        self.hold_pongs = False
        self._pong: bytes | None = None
        #: Pongs not sent because a later ping superseded them.
        self.pongs_coalesced = 0
        # outgoing
        self._out: list[bytes] = []
        self._send_opcode = 0  # opcode of a fragmented message being sent, 0 if none
        self._send_compressed = False
        # closing
        self.close_rcvd: CloseReceived | None = None
        self.close_sent: tuple[int, str] | None = None
        self.failure: ProtocolError | None = None
        #: Deliver messages received before a bad frame before failing (see
        #: :meth:`apply_pending_failure`). The asyncio layer turns this on.
        self.defer_failures = False
        self.pending_failure: ProtocolError | None = None
        self.eof_received = False

    # ------------------------------------------------------------------ properties

    @property
    def close_code(self) -> int:
        """The code the peer closed with (1005 for none, 1006 if no close frame came)."""
        return self.close_rcvd.code if self.close_rcvd is not None else CloseCode.ABNORMAL

    @property
    def close_reason(self) -> str:
        """The reason the peer closed with."""
        return self.close_rcvd.reason if self.close_rcvd is not None else ""

    @property
    def should_close_transport(self) -> bool:
        """Whether the I/O layer should now close the TCP connection.

        RFC 6455 7.1.1: the server closes the TCP connection first, as soon as the closing
        handshake is done (or the connection failed); the client waits for the server to do
        so, and closes on its own only after receiving EOF (or after a timeout of its own).
        """
        if self.eof_received:
            return True
        if self._is_client:
            return False
        return self.failure is not None or (
            self.close_sent is not None and self.close_rcvd is not None
        )

    # ------------------------------------------------------------------ receiving

    def events_received(self) -> list[Event]:
        """Return and clear the events parsed so far."""
        events = self._events
        if events:
            self._events = []
            self._pending_bytes = 0
        return events

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        self.eof_received = True
        self.state = _CLOSED
        self._discard = True
        self._buf.clear()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Parse bytes from the network; never raises for bad input from the peer.

        A protocol violation fails the connection: a close frame with the right code is
        queued, :attr:`failure` keeps the cause, and further input is ignored.
        """
        if self._discard:
            return
        buf = self._buf
        if self._fast_frame(data):
            return
        # In the middle of a frame with nothing buffered (a large message, read after
        # read): its payload is taken straight from ``data``, not copied into the buffer
        # first.
        direct = not buf and self._remaining > 0
        if not direct:
            buf += data
        n = len(buf)
        pos = 0
        self.stalled = False
        self._frames_left = self.frames_per_call
        try:
            if direct:
                with memoryview(data) as view:
                    take = min(self._remaining, len(view))
                    with view[:take] as piece:
                        chunk = (
                            self._unmask(piece) if self._frame_mask is not None else bytes(piece)
                        )
                    self._remaining -= take
                    self._on_payload(chunk, self._remaining == 0)
                    if self._discard:
                        return
                    if take < len(view):
                        buf += view[take:]
                n = len(buf)
            while pos < n:
                if self._remaining:
                    take = min(self._remaining, n - pos)
                    if self._frame_mask is not None:
                        # Unmask straight from the buffer: one copy, not two.
                        with memoryview(buf) as view, view[pos : pos + take] as piece:
                            chunk = self._unmask(piece)
                    else:
                        chunk = bytes(buf[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    self._on_payload(chunk, self._remaining == 0)
                    if self._discard:
                        return
                    continue
                if n - pos < 2:
                    break
                if self._must_stall():
                    self.stalled = True
                    break
                b0 = buf[pos]
                b1 = buf[pos + 1]
                length = b1 & 0x7F
                hlen = 2
                if length == 126:
                    hlen = 4
                    if n - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                elif length == 127:
                    hlen = 10
                    if n - pos < 10:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise ProtocolError("64-bit length with the most significant bit set")
                masked = b1 & 0x80
                if masked:
                    hlen += 4
                if n - pos < hlen:
                    break
                opcode = b0 & 0x0F
                fin = bool(b0 & 0x80)
                # RFC 6455 5.1: servers reject unmasked frames, clients reject masked ones.
                if bool(masked) == self._is_client:
                    raise ProtocolError(
                        "masked frame from the server"
                        if self._is_client
                        else "unmasked frame from the client"
                    )
                mask = bytes(buf[pos + hlen - 4 : pos + hlen]) if masked else None
                if opcode in _CONTROL_OPCODES:
                    self._check_control(b0, fin, length)
                    if n - pos < hlen + length:
                        break
                    payload = bytes(buf[pos + hlen : pos + hlen + length])
                    self._frames_left -= 1
                    pos += hlen + length
                    if mask is not None:
                        payload = apply_mask(payload, mask)
                    self._on_control(opcode, payload)
                    if self._discard:
                        return
                    continue
                if opcode not in _DATA_OPCODES:
                    raise ProtocolError(f"reserved opcode {opcode:#x}")
                self._start_data_frame(b0, opcode, fin, length)
                self._frames_left -= 1
                pos += hlen
                self._frame_mask = mask
                self._mask_offset = 0
                if length == 0:
                    self._on_payload(b"", True)
                    if self._discard:
                        return
                else:
                    self._remaining = length
        except ProtocolError as exc:
            if self.defer_failures and any(
                e.__class__ is TextMessage or e.__class__ is BinaryMessage for e in self._events
            ):
                # Messages that arrived before the bad frame are delivered first; the
                # caller applies the failure once it has handled them.
                self.pending_failure = exc
                self._discard = True
                self._buf.clear()
            else:
                self._fail(exc)
            return
        finally:
            if self._pong is not None and not self.hold_pongs:
                self._queue_pong()
        if pos:
            del buf[:pos]

    def _must_stall(self) -> bool:
        """Whether to stop parsing before the next frame (see ``max_queue_bytes``)."""
        if self._frames_left <= 0:
            return True
        queued = self._pending_bytes + self.held_bytes
        # Nothing waiting: go on, so that one message always gets through whole.
        return queued > 0 and queued + len(self._msg_buf) >= self.max_queue_bytes

    def _queue_pong(self) -> None:
        payload = self._pong
        self._pong = None
        if payload is not None and self.close_sent is None:
            self._out.append(self._frame(_PONG, payload))

    def release_pongs(self) -> None:
        """End :attr:`hold_pongs`: queue the pong of the most recent ping held, if any."""
        self.hold_pongs = False
        self._queue_pong()

    def receive_message(self, data: bytes | bytearray | memoryview) -> str | bytes | None:
        """Fast path of :meth:`receive_data` for a caller that takes one message at a time.

        When ``data`` is exactly one small, final, uncompressed data frame, with nothing
        buffered from before and room under ``max_queue_bytes``, return its message (str
        for text, bytes for binary) without making an event; the caller counts it in
        :attr:`held_bytes` if it keeps it. Otherwise return None having done nothing:
        call :meth:`receive_data` with the same bytes.

        It accepts only what the general parser accepts (same masking rule, same limits,
        valid UTF-8), so a frame has one outcome whether it arrives whole or split (a
        property test checks this).
        """
        if (
            self._buf
            or self._remaining
            or self._msg_opcode
            or self._discard
            or self._pending_bytes + self.held_bytes >= self.max_queue_bytes
        ):
            return None
        # The limits of _start_data_frame: max_frame_size and max_size (one frame, one
        # message here), each of which may be the smaller.
        limit = self.max_size
        if self.max_frame_size < limit:
            limit = self.max_frame_size
        return parse_small_frame(data, not self._is_client, limit)

    def _fast_frame(self, data: bytes | bytearray | memoryview) -> bool:
        """receive_data's fast path: ``data`` is exactly one small data frame (above)."""
        message = self.receive_message(data)
        if message is None:
            return False
        if message.__class__ is str:
            self._events.append(TextMessage(message))
        else:
            self._events.append(BinaryMessage(message))  # type: ignore[arg-type]
        self._pending_bytes += len(message)
        return True

    def _check_control(self, b0: int, fin: bool, length: int) -> None:
        # RFC 6455 5.5: control frames are not fragmented and carry at most 125 bytes.
        if b0 & 0x70:
            raise ProtocolError("reserved bits set on a control frame")
        if not fin:
            raise ProtocolError("fragmented control frame")
        if length > _MAX_CONTROL:
            raise ProtocolError("control frame payload over 125 bytes")

    def _start_data_frame(self, b0: int, opcode: int, fin: bool, length: int) -> None:
        rsv = b0 & 0x70
        if opcode == _CONT:
            if not self._msg_opcode:
                raise ProtocolError("continuation frame without a message in progress")
            if rsv:
                raise ProtocolError("reserved bits set on a continuation frame")
        else:
            if self._msg_opcode:
                raise ProtocolError("new data frame while a fragmented message is in progress")
            # RFC 7692 6: RSV1 marks a compressed message, only with the extension.
            if rsv & 0x30 or (rsv & 0x40 and self.deflate is None):
                raise ProtocolError("reserved bits set without a negotiated extension")
            self._msg_opcode = opcode
            self._msg_compressed = bool(rsv)
            self._msg_size = 0
            self._inflated = 0
            self._utf8 = None
        if length > self.max_frame_size:
            raise PayloadTooBig(f"frame of {length} bytes exceeds the limit")
        if not self._msg_compressed and self._msg_size + length > self.max_size:
            raise PayloadTooBig(f"message exceeds the limit of {self.max_size} bytes")
        self._frame_fin = fin

    def _unmask(self, chunk: bytes | memoryview) -> bytes:
        mask = self._frame_mask
        assert mask is not None
        off = self._mask_offset
        if off:
            mask = mask[off:] + mask[:off]
        self._mask_offset = (off + len(chunk)) & 3
        return apply_mask(chunk, mask)

    def _on_payload(self, chunk: bytes, frame_done: bool) -> None:
        """A piece of a data frame's payload, unmasked."""
        msg_done = frame_done and self._frame_fin
        opcode = self._msg_opcode
        if self._msg_compressed:
            deflate = self.deflate
            assert deflate is not None
            self._msg_size += len(chunk)  # bound the compressed input too
            if self._msg_size > self.max_size:
                raise PayloadTooBig(f"message exceeds the limit of {self.max_size} bytes")
            limit = self.max_size - self._inflated
            data = b""
            try:
                data = deflate.decompress(chunk, limit)
                if msg_done:
                    data += deflate.end_message(limit - len(data))
            except PayloadTooBig as exc:
                if opcode == _TEXT:
                    # Invalid UTF-8 within the limit fails first (1007), as it does when
                    # the same bytes come in smaller pieces.
                    self._append(opcode, data + exc.partial, False)
                raise
            self._inflated += len(data)
            self._append(opcode, data, msg_done)
        elif msg_done and not self._msg_buf and self._utf8 is None:
            # Fast path: the whole message in one piece.
            self._msg_opcode = 0
            self._pending_bytes += len(chunk)
            if opcode == _TEXT:
                try:
                    text = chunk.decode()
                except UnicodeDecodeError as exc:
                    raise ProtocolError(f"invalid UTF-8 in a text message: {exc}", 1007) from exc
                self._events.append(TextMessage(text))
            else:
                self._events.append(BinaryMessage(chunk))
            return
        else:
            self._msg_size += len(chunk)
            self._append(opcode, chunk, msg_done)
        if msg_done:
            self._finish_message()

    def _append(self, opcode: int, data: bytes, final: bool) -> None:
        if opcode == _TEXT:
            decoder = self._utf8
            if decoder is None:
                decoder = self._utf8 = _Utf8Decoder()
            try:
                # RFC 6455 8.1 fail fast: invalid UTF-8 is caught in the first bad piece.
                # The decoded piece is dropped: the message is decoded once, at the end.
                decoder.decode(data, final)
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"invalid UTF-8 in a text message: {exc}", 1007) from exc
        if data:
            if self._msg_buf:
                self._msg_buf += data  # a bytearray: in place
            else:
                self._msg_buf = bytearray(data)

    def _finish_message(self) -> None:
        opcode = self._msg_opcode
        buf = self._msg_buf
        self._msg_opcode = 0
        self._msg_buf = b""
        self._utf8 = None
        self._pending_bytes += len(buf)
        if opcode == _TEXT:
            self._events.append(TextMessage(buf.decode()))
        else:
            self._events.append(BinaryMessage(bytes(buf)))

    def _on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == _PING:
            # RFC 6455 5.5.2: answer with a pong carrying the same payload. Queued at the
            # end of receive_data() (or held, see hold_pongs); a ping that comes before
            # that supersedes it: RFC 6455 5.5.3 allows answering only the most recent.
            if self.close_sent is None:
                if self._pong is not None:
                    if self.hold_pongs:
                        self.pongs_coalesced += 1
                    else:
                        self._queue_pong()
                self._pong = payload
            self._events.append(Ping(payload))
        elif opcode == _PONG:
            self._events.append(Pong(payload))
        else:
            self._on_close(payload)

    def _on_close(self, payload: bytes) -> None:
        # RFC 6455 5.5.1
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                raise ProtocolError(f"invalid close code {code}")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError as exc:
                raise ProtocolError("invalid UTF-8 in the close reason", 1007) from exc
        else:
            code, reason = CloseCode.NO_STATUS, ""
        self.close_rcvd = CloseReceived(code, reason)
        self._events.append(self.close_rcvd)
        if self.close_sent is None:
            # Echo the code (RFC 6455 5.5.1); an empty close is answered with an empty one.
            echo = None if code == CloseCode.NO_STATUS else code
            self._send_close_frame(echo, "")
        self.state = _CLOSING
        # RFC 6455 1.4: nothing is processed after a close frame.
        self._discard = True
        self._buf.clear()

    def apply_pending_failure(self) -> None:
        """Fail the connection for a bad frame whose failure was deferred.

        With :attr:`defer_failures`, messages received before a bad frame are returned by
        :meth:`events_received` first, and the connection stays open (for sending) until
        this is called: the application may still answer them (RFC 6455 does not order
        the two; Autobahn's strict mode expects the answers first). A no-op otherwise.
        """
        exc = self.pending_failure
        if exc is not None:
            self.pending_failure = None
            self._fail(exc)

    def _fail(self, exc: ProtocolError) -> None:
        """RFC 6455 7.1.7 Fail the WebSocket Connection."""
        self.failure = exc
        if self.close_sent is None and self.state is _OPEN:
            self._send_close_frame(exc.code, "")
        self.state = _CLOSING
        self._discard = True
        self._buf.clear()

    # ------------------------------------------------------------------ sending

    def _frame(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
        if self._mask is not None:
            return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=self._mask())
        return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1)

    def _check_open(self) -> None:
        if self.state is not _OPEN or self.close_sent is not None:
            raise InvalidState(f"cannot send in state {self.state.name}")

    def send_message(self, data: str | bytes, *, compress: bool | None = None) -> None:
        """Queue a whole text (``str``) or binary (``bytes``) message.

        Args:
            data: the message.
            compress: force compression on (True) or off (False); None compresses when
                permessage-deflate was negotiated and the message is over the threshold.

        Raises:
            InvalidState: the connection is not open or a fragmented send is in progress.
        """
        self._out.append(self.encode_message(data, compress=compress))

    def encode_message(self, data: str | bytes, *, compress: bool | None = None) -> bytes:
        """Like :meth:`send_message`, but return the frame instead of queuing it.

        The caller must write the bytes to the network before anything else is sent.

        Raises:
            InvalidState: the connection is not open or a fragmented send is in progress.
        """
        if self.state is not _OPEN or self.close_sent is not None:
            raise InvalidState(f"cannot send in state {self.state.name}")
        if self._send_opcode:
            raise InvalidState("a fragmented message is being sent")
        deflate = self.deflate
        if deflate is None and self._mask is None:
            return encode_server_frame(data)  # server, no compression: the common case
        if isinstance(data, str):
            opcode = _TEXT
            payload = data.encode()
        else:
            opcode = _BINARY
            payload = data if data.__class__ is bytes else bytes(data)
        if (
            deflate is not None
            and deflate.can_compress
            and (compress or (compress is None and len(payload) >= deflate.threshold))
        ):
            return self._frame(opcode, deflate.compress(payload), rsv1=True)
        return self._frame(opcode, payload)

    def send_fragment(self, data: str | bytes, *, fin: bool, compress: bool | None = None) -> None:
        """Queue one fragment of a message (RFC 6455 5.4).

        The first fragment's type (``str`` or ``bytes``) sets the message type; later
        fragments must have the same type. ``fin`` marks the last fragment.

        Raises:
            InvalidState: the connection is not open.
            TypeError: a fragment whose type differs from the first one.
        """
        self._check_open()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        kind = _TEXT if isinstance(data, str) else _BINARY
        if self._send_opcode:
            if kind != self._send_opcode:
                raise TypeError("all fragments of a message must be of the same type")
            opcode = _CONT
            compressed = self._send_compressed
            rsv1 = False
        else:
            opcode = kind
            deflate = self.deflate
            compressed = bool(
                deflate is not None and deflate.can_compress and compress is not False
            )
            self._send_compressed = compressed
            rsv1 = compressed
        if compressed:
            assert self.deflate is not None
            payload = self.deflate.compress(payload, fin=fin)
        self._out.append(self._frame(opcode, payload, fin=fin, rsv1=rsv1))
        self._send_opcode = 0 if fin else kind

    def send_ping(self, payload: bytes = b"") -> None:
        """Queue a ping (RFC 6455 5.5.2).

        Raises:
            InvalidState: the connection is not open.
            ValueError: the payload is over 125 bytes.
        """
        self._send_control(_PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Queue an unsolicited pong (RFC 6455 5.5.3).

        Raises:
            InvalidState: the connection is not open.
            ValueError: the payload is over 125 bytes.
        """
        self._send_control(_PONG, payload)

    def _send_control(self, opcode: int, payload: bytes) -> None:
        self._check_open()
        # RFC 6455 5.5: a control frame carries at most 125 bytes.
        if len(payload) > _MAX_CONTROL:
            kind = "ping" if opcode == _PING else "pong"
            raise ValueError(f"{kind} payload over 125 bytes")
        self._out.append(self._frame(opcode, payload))

    def send_close(self, code: int | None = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 7.1.2). A no-op if already closing.

        Raises:
            ValueError: an invalid code or a reason too long.
        """
        payload = serialize_close(code, reason)  # validate even when it is a no-op
        if self.close_sent is not None or self.state is _CLOSED:
            return
        self._queue_pong()
        self._out.append(self._frame(_CLOSE, payload))
        self.close_sent = (code if code is not None else CloseCode.NO_STATUS, reason)
        self.state = _CLOSING

    def _send_close_frame(self, code: int | None, reason: str) -> None:
        self._queue_pong()  # the pong of an earlier ping goes first; nothing after a close
        self._out.append(self._frame(_CLOSE, serialize_close(code, reason)))
        self.close_sent = (code if code is not None else CloseCode.NO_STATUS, reason)

    def data_to_send(self) -> list[bytes]:
        """Return and clear the bytes queued for the network."""
        out = self._out
        if out:
            self._out = []
        return out

    def prepare_broadcast(self, data: str | bytes) -> bytes:
        """Encode ``data`` as one unmasked, uncompressed frame shareable by many servers.

        The same bytes may be written to every server-side connection (servers never mask,
        and permessage-deflate allows uncompressed messages).

        Raises:
            InvalidState: called on a client connection (clients must mask every frame).
        """
        if self._is_client:
            raise InvalidState("a client cannot share frames between connections")
        return encode_server_frame(data)
