"""Authentication that lives as long as the token: verify on connect, expire, refresh
in-band, revoke across the cluster.

::

    auth = Authenticator(JWTVerifier(secret), sources=(from_auth(), from_header()))
    auth.install(hub)                       # the middleware and the refresh handler

    @hub.on("whoami")
    async def whoami(socket):
        return socket.data["user_id"]

    await auth.revoke(hub, "alice")         # every socket of alice, on every node

What happens to a socket of a namespace the authenticator is installed on:

- **Connect.** The first token source that finds a token wins (the CONNECT ``auth``
  payload, then ``Authorization: Bearer``, by default). No token: the CONNECT is refused
  with ``"authentication required"``; a token the verifier rejects: with
  ``"invalid token: <reason>"`` (``expired``, ``bad signature``...). Accepted: the socket
  gets ``socket.data["user_id"]`` (a str) and ``socket.data["claims"]`` (the verified
  claims) and joins the room ``user_room.format(user_id)`` (``"user:alice"``) before its
  CONNECT is answered, so ``hub.to("user:alice")`` reaches it from any node at once.
- **Expiry.** When the claims have ``exp``, a timer fires at ``exp`` (plus the leeway):
  the socket gets ``expiry_event`` ``{"reason": "token expired", "exp": ...}``, then a
  server disconnect (``"io server disconnect"``: socket.io clients do not reconnect by
  themselves; they get a new token first). The timer goes with the socket.
- **Refresh.** The client emits ``refresh_event`` with a new token and an
  acknowledgement; a valid token of the same user replaces the claims and re-arms the
  timer: the ack is ``{"ok": True, "exp": ...}``. Otherwise it is
  ``{"ok": False, "error": "..."}`` and nothing changes (the old expiry still holds).
- **Revoke.** :meth:`Authenticator.revoke` sends ``revoke_event`` ``{"reason": ...}``
  to every socket of the user, then disconnects it, on every live node of the cluster.

Tokens never reach a log line or a CONNECT_ERROR: reasons are fixed strings for
:class:`JWTVerifier`, and a custom verifier's message is scrubbed of the token.

A verifier is any callable ``(token) -> claims`` (a dict), or one returning an awaitable
of it, that raises :class:`~tether.exceptions.ConnectionRefused` (its message is sent to
the client) for a token it rejects; any other exception refuses with
``"invalid token"``, logged at WARNING without its text.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import AckTimeout, ConnectionRefused, InvalidOption
from .packets import RESERVED_EVENTS
from .socket import Handshake, Socket

if TYPE_CHECKING:
    from .hub import Hub
    from .namespace import Namespace

__all__ = [
    "Authenticator",
    "Claims",
    "JWTVerifier",
    "RevokeResult",
    "TokenSource",
    "Verifier",
    "from_auth",
    "from_cookie",
    "from_header",
    "from_query",
]

logger = logging.getLogger("tether.realtime.auth")

Claims = dict[str, Any]
#: Finds the token in what the client sent when it connected; None when it is not there.
TokenSource = Callable[[Handshake], str | None]
#: Verifies a token and returns its claims (or an awaitable of them).
Verifier = Callable[[str], Claims | Awaitable[Claims]]

# The server-side event by which the node that revokes asks the others to end the
# sockets of a user room in order (event first, then disconnect).
_REVOKE_SERVER_EVENT = "tether:auth:revoke"
_REDACTED = "<redacted>"
_MAX_REASON = 200


# --------------------------------------------------------------------------- token sources


def from_auth(key: str = "token") -> TokenSource:
    """The token in the Socket.IO CONNECT ``auth`` payload (``auth: {token: "..."}``).

    Raises:
        InvalidOption: an empty key.
    """
    if not key:
        raise InvalidOption("the auth key must not be empty")

    def source(handshake: Handshake) -> str | None:
        value = handshake.auth.get(key)
        return value if isinstance(value, str) and value else None

    source.__qualname__ = f"from_auth({key!r})"
    return source


def from_header(name: str = "Authorization", scheme: str | None = "Bearer") -> TokenSource:
    """The token in an HTTP header of the Engine.IO handshake request, after ``scheme``
    (``Authorization: Bearer <token>``); the header name and the scheme are matched
    without regard to case (RFC 9110 5.1, 11.1). ``scheme=None`` takes the whole value.

    Browsers cannot set headers on a WebSocket; this suits other clients.

    Raises:
        InvalidOption: an empty header name or scheme.
    """
    if not name or scheme == "":
        raise InvalidOption("the header name and the scheme must not be empty")
    wanted = name.lower()

    def source(handshake: Handshake) -> str | None:
        value = handshake.headers.get(wanted)
        if value is None:
            # The hub lowercases header names; a hand-made Handshake may not.
            value = next((v for k, v in handshake.headers.items() if k.lower() == wanted), None)
        if value is None:
            return None
        value = value.strip()
        if scheme is not None:
            given, _, value = value.partition(" ")
            if given.lower() != scheme.lower():
                return None
            value = value.strip()
        return value or None

    source.__qualname__ = f"from_header({name!r}, {scheme!r})"
    return source


def from_query(name: str = "token") -> TokenSource:
    """The token in a query parameter of the handshake URL (``?token=...``).

    URLs end up in proxy and access logs: prefer the auth payload or a header.

    Raises:
        InvalidOption: an empty parameter name.
    """
    if not name:
        raise InvalidOption("the query parameter name must not be empty")

    def source(handshake: Handshake) -> str | None:
        return handshake.query.get(name) or None

    source.__qualname__ = f"from_query({name!r})"
    return source


def from_cookie(name: str) -> TokenSource:
    """The token in a cookie of the handshake request (``Cookie: name=<token>``).

    Raises:
        InvalidOption: an empty cookie name.
    """
    if not name:
        raise InvalidOption("the cookie name must not be empty")

    def source(handshake: Handshake) -> str | None:
        header = handshake.headers.get("cookie")
        if header is None:
            header = next((v for k, v in handshake.headers.items() if k.lower() == "cookie"), None)
        if not header:
            return None
        # RFC 6265 5.4: "name=value" pairs separated by "; ". Parsed by hand because
        # http.cookies gives up on the whole header at the first pair it dislikes.
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value or None
        return None

    source.__qualname__ = f"from_cookie({name!r})"
    return source


# --------------------------------------------------------------------------- JWT


class JWTVerifier:
    """Verify JSON Web Tokens with PyJWT (``pip install 'tether[jwt]'``).

    ``verifier(token)`` returns the claims of a token whose signature, ``exp``, ``nbf``,
    ``iat``, audience and issuer check out, and raises
    :class:`~tether.exceptions.ConnectionRefused` with ``"invalid token: <reason>"``
    otherwise; the reasons are fixed strings (``expired``, ``not yet valid``,
    ``wrong audience``, ``wrong issuer``, ``bad signature``, ``algorithm not allowed``,
    ``missing claim 'sub'``, ``malformed``, ``rejected``), never the token.

    Args:
        key: the HMAC secret, or the public key (PEM or a ``cryptography`` key object)
            for RS/ES/PS/EdDSA algorithms.
        algorithms: the accepted ``alg`` values; a token signed otherwise is refused
            (never ``"none"``).
        audience: the required ``aud`` (a token with an ``aud`` is refused when None).
        issuer: the required ``iss``.
        leeway: seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        user_claim: the claim holding the user id; required. The
            :class:`Authenticator` reads it by default.
        require: further claims a token must have (``("exp",)`` for tokens that end).

    Raises:
        ImportError: PyJWT is not installed.
        InvalidOption: no algorithm, the ``"none"`` algorithm, or a negative leeway.
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        user_claim: str = "sub",
        require: Sequence[str] = (),
    ) -> None:
        try:
            import jwt  # noqa: F401  (optional: only this class needs it)
        except ImportError as exc:
            raise ImportError(
                "JWTVerifier needs PyJWT: install tether[jwt] (pip install 'tether[jwt]')"
            ) from exc
        algorithms = [algorithms] if isinstance(algorithms, str) else list(algorithms)
        if not algorithms:
            raise InvalidOption("give at least one algorithm")
        if any(alg.lower() == "none" for alg in algorithms):
            raise InvalidOption("the 'none' algorithm verifies nothing")
        if not (leeway >= 0 and math.isfinite(leeway)):
            raise InvalidOption(f"leeway must be >= 0, not {leeway!r}")
        self.key = key
        self.algorithms = algorithms
        self.audience = audience
        self.issuer = issuer
        self.leeway = float(leeway)
        self.user_claim = user_claim
        self.require = list(dict.fromkeys([user_claim, *require]))

    def __call__(self, token: str) -> Claims:
        """Verify ``token`` and return its claims.

        Raises:
            ConnectionRefused: the token is invalid, expired, or not for us.
        """
        import jwt

        try:
            claims: Claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require},
            )
        except jwt.PyJWTError as exc:
            # "from None": PyJWT's own exception stays out of tracebacks and logs.
            raise ConnectionRefused(f"invalid token: {_jwt_reason(exc)}") from None
        return claims

    def __repr__(self) -> str:
        return f"<JWTVerifier {self.algorithms} user_claim={self.user_claim!r}>"


def _jwt_reason(exc: Exception) -> str:
    """A fixed description of a PyJWT error (its text could quote parts of the token)."""
    import jwt

    errors = jwt.exceptions
    if isinstance(exc, errors.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    reasons: list[tuple[type[Exception], str]] = [
        (errors.ExpiredSignatureError, "expired"),
        (errors.ImmatureSignatureError, "not yet valid"),
        (errors.InvalidAudienceError, "wrong audience"),
        (errors.InvalidIssuerError, "wrong issuer"),
        (errors.InvalidIssuedAtError, "bad iat claim"),
        (errors.InvalidSignatureError, "bad signature"),  # before DecodeError, its base
        (errors.InvalidAlgorithmError, "algorithm not allowed"),
        (errors.DecodeError, "malformed"),
    ]
    for cls, reason in reasons:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, errors.InvalidKeyError):
        # The server's key does not suit the token's algorithm: our problem, not theirs.
        logger.warning("JWT verification failed: the key does not suit the algorithm")
    return "rejected"


# --------------------------------------------------------------------------- the authenticator


@dataclass(frozen=True, slots=True)
class RevokeResult:
    """What :meth:`Authenticator.revoke` did.

    Attributes:
        disconnected: sockets disconnected, over every node that answered.
        missing: ids of nodes that did not answer the final disconnect (dead or too
            slow) or failed it: their sockets of the user may still be connected.
    """

    disconnected: int
    missing: frozenset[str]


def _scrub(text: str, token: str) -> str:
    """``text`` without the token or any long piece of it (a JWT's segments), bounded."""
    if token:
        text = text.replace(token, _REDACTED)
        for piece in re.split(r"[.\s]", token):
            if len(piece) >= 8:
                text = text.replace(piece, _REDACTED)
    return text[:_MAX_REASON]


def _claim(name: str) -> Callable[[Claims], Any]:
    def user_id(claims: Claims) -> Any:
        return claims[name]

    return user_id


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Authenticator:
    """Token authentication of a hub's namespaces, for as long as the token is valid.

    See the module docstring for what happens on connect, expiry, refresh and revoke.
    One authenticator may be installed on several namespaces and on several hubs (the
    nodes of a cluster in one process, in tests).

    Args:
        verify: the verifier, ``(token) -> claims`` or an awaitable of claims
            (:class:`JWTVerifier`, or your own).
        sources: where to look for the token, in order (default: the CONNECT auth
            payload's ``token``, then ``Authorization: Bearer``).
        user_id: ``(claims) -> id`` (made a str); default: the claim named by the
            verifier's ``user_claim`` attribute, else ``claims["sub"]``.
        user_room: the room of a user's sockets, a ``str.format`` pattern with one
            ``{}`` (``"user:{}"``).
        expiry_event: emitted to a socket whose token expired, just before it is
            disconnected.
        refresh_event: the event a client emits with a new token (and an ack).
        revoke_event: emitted to a revoked socket, just before it is disconnected.
        leeway: seconds past ``exp`` before the expiry timer fires (None: the
            verifier's ``leeway`` attribute, else 0), so a token the verifier still
            accepts is not cut at once.
        max_token_length: longer tokens are refused before they reach the verifier.

    Raises:
        InvalidOption: no sources, a ``user_room`` that does not put the id in the room
            name, a reserved event name, or a bad leeway or length.
    """

    def __init__(
        self,
        verify: Verifier,
        *,
        sources: Sequence[TokenSource] | None = None,
        user_id: Callable[[Claims], Any] | None = None,
        user_room: str = "user:{}",
        expiry_event: str = "tether:token_expired",
        refresh_event: str = "tether:refresh",
        revoke_event: str = "tether:revoked",
        leeway: float | None = None,
        max_token_length: int = 8192,
    ) -> None:
        self.verify = verify
        self.sources: tuple[TokenSource, ...] = (
            tuple(sources) if sources is not None else (from_auth(), from_header())
        )
        if not self.sources:
            raise InvalidOption("give at least one token source")
        if user_id is None:
            user_id = _claim(getattr(verify, "user_claim", "sub"))
        self.user_id = user_id
        try:
            distinct = user_room.format("a") != user_room.format("b")
        except (IndexError, KeyError, ValueError):
            distinct = False
        if not distinct:
            # Without the id in it every user would share one room: revoking one would
            # disconnect everybody.
            raise InvalidOption(f"user_room must hold one '{{}}' for the id, not {user_room!r}")
        self.user_room = user_room
        for event in (expiry_event, refresh_event, revoke_event):
            if not event or event in RESERVED_EVENTS or event == "*":
                raise InvalidOption(f"{event!r} cannot be an authentication event")
        self.expiry_event = expiry_event
        self.refresh_event = refresh_event
        self.revoke_event = revoke_event
        grace: Any = getattr(verify, "leeway", 0.0) if leeway is None else leeway
        if not (_is_number(grace) and grace >= 0):
            raise InvalidOption(f"leeway must be a number >= 0, not {grace!r}")
        self.leeway = float(grace)
        if max_token_length < 1:
            raise InvalidOption("max_token_length must be at least 1")
        self.max_token_length = max_token_length
        # The expiry timer of each connected socket whose claims have ``exp``.
        self._timers: dict[Socket, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # What the middleware verified, until the connect handler applies it: recovery
        # replaces ``socket.data`` in between. Weak: a socket a later middleware refuses
        # never reaches the connect handler.
        self._verified: weakref.WeakKeyDictionary[Socket, tuple[str, Claims]] = (
            weakref.WeakKeyDictionary()
        )
        self._namespaces: list[str] = []

    # ------------------------------------------------------------------ introspection

    @property
    def timers(self) -> int:
        """Expiry timers armed now (one per connected socket whose token has ``exp``)."""
        return len(self._timers)

    def room_of(self, user_id: Any) -> str:
        """The room of ``user_id``'s sockets."""
        return self.user_room.format(str(user_id))

    # ------------------------------------------------------------------ installing

    def install(self, hub: Hub, namespace: str | re.Pattern[str] = "/") -> Namespace:
        """Guard ``namespace`` of ``hub``: the middleware, the connect and disconnect
        handlers (expiry timers), the refresh handler, and the handler through which
        other nodes' :meth:`revoke` reaches this one.

        Install it before your own middlewares, so that they see
        ``socket.data["user_id"]``. Install it on every node of a cluster.

        Returns:
            The namespace (for a pattern, the parent of the dynamic namespaces).
        """
        ns = hub.of(namespace)
        ns.use(self._middleware)
        ns.on_connect()(self._on_connect)
        ns.on_disconnect()(self._on_disconnect)
        ns.on(self.refresh_event)(self._on_refresh)

        async def revoke_here(*args: Any) -> int:
            # Server-side events may also come from an emitter: check what arrived.
            if len(args) != 4 or not all(isinstance(a, str) for a in args[:3]):
                return 0
            name, room, event, payload = args
            return await _end_room(hub, name, room, event, payload)

        # One handler per hub serves every authenticator: it gets the room and event.
        hub.on_server_event(_REVOKE_SERVER_EVENT)(revoke_here)
        if isinstance(namespace, str) and ns.name not in self._namespaces:
            self._namespaces.append(ns.name)
        return ns

    # ------------------------------------------------------------------ verifying

    def _find_token(self, handshake: Handshake) -> str | None:
        for source in self.sources:
            try:
                token = source(handshake)
            except Exception as exc:
                # Only the class: the message of a failing source may hold the token.
                logger.warning("token source %r failed: %s", source, type(exc).__name__)
                continue
            if token:
                return token
        return None

    async def authenticate(self, token: str) -> tuple[str, Claims]:
        """Verify ``token`` and find its user.

        Returns:
            The user id and the claims.

        Raises:
            ConnectionRefused: the token is refused (its message says why, never
                quoting the token).
        """
        if len(token) > self.max_token_length:
            raise ConnectionRefused("invalid token: too long")
        try:
            result = self.verify(token)
            claims = await result if inspect.isawaitable(result) else result
        except ConnectionRefused as exc:
            raise ConnectionRefused(_scrub(exc.message, token), exc.data) from None
        except Exception as exc:
            logger.warning("token verifier failed: %s", type(exc).__name__)
            raise ConnectionRefused("invalid token") from None
        if not isinstance(claims, dict):
            logger.warning("token verifier returned %s, not a dict", type(claims).__name__)
            raise ConnectionRefused("invalid token")
        if "exp" in claims and not _is_number(claims["exp"]):
            raise ConnectionRefused("invalid token: bad exp claim")
        try:
            user = self.user_id(claims)
        except Exception:
            user = None
        if user is None or user == "":
            raise ConnectionRefused("invalid token: no user id")
        return str(user), claims

    async def _middleware(self, socket: Socket, auth: dict[str, Any]) -> None:
        token = self._find_token(socket.handshake)
        if token is None:
            self._log_refusal(socket, "authentication required")
            raise ConnectionRefused("authentication required")
        try:
            user, claims = await self.authenticate(token)
        except ConnectionRefused as exc:
            self._log_refusal(socket, exc.message)
            raise
        socket.data["user_id"] = user
        socket.data["claims"] = claims
        self._verified[socket] = (user, claims)
        # Awaited: once CONNECT is answered, a revoke from any node reaches the socket.
        await socket.join(self.room_of(user))

    @staticmethod
    def _log_refusal(socket: Socket, reason: str) -> None:
        logger.info(
            "%s: connection from %s refused: %s",
            socket.namespace.name,
            socket.handshake.address,
            reason,
        )

    # ------------------------------------------------------------------ lifetime

    async def _on_connect(self, socket: Socket, auth: Any) -> None:
        verified = self._verified.pop(socket, None)
        if verified is not None:
            if socket.recovered and socket.data.get("user_id") != verified[0]:
                # A recovered session keeps its rooms: never hand them to someone else.
                logger.info("%s: recovered session of another user refused", socket.sid)
                await socket.disconnect()
                return
            socket.data["user_id"], socket.data["claims"] = verified
        if not isinstance(socket.data.get("claims"), dict) or "user_id" not in socket.data:
            await socket.disconnect()  # not through the middleware: fail closed
            return
        if socket.connected:
            self._arm(socket)

    async def _on_disconnect(self, socket: Socket, reason: str) -> None:
        self._disarm(socket)

    def _arm(self, socket: Socket) -> None:
        """(Re)start the expiry timer of ``socket`` from its claims' ``exp``."""
        self._disarm(socket)
        exp = socket.data["claims"].get("exp")
        if exp is None:
            return
        delay = max(0.0, float(exp) + self.leeway - time.time())
        loop = asyncio.get_running_loop()
        self._timers[socket] = loop.call_later(delay, self._expired, socket, exp)

    def _disarm(self, socket: Socket) -> None:
        timer = self._timers.pop(socket, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, socket: Socket, exp: Any) -> None:
        self._timers.pop(socket, None)
        if not socket.connected:
            return
        logger.info("%s: token of user %s expired", socket.sid, socket.data.get("user_id"))
        payload = {"reason": "token expired", "exp": exp}
        task = asyncio.get_running_loop().create_task(
            _end(socket, self.expiry_event, payload), name=f"tether-auth-expiry-{socket.sid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("ending an expired socket failed", exc_info=task.exception())

    # ------------------------------------------------------------------ refresh

    async def _on_refresh(self, socket: Socket, token: Any = None, *_: Any) -> dict[str, Any]:
        if isinstance(token, dict):
            token = token.get("token")
        if not isinstance(token, str) or not token:
            return {"ok": False, "error": "a token is required"}
        current = socket.data.get("user_id")
        if current is None:
            return {"ok": False, "error": "not authenticated"}
        try:
            user, claims = await self.authenticate(token)
        except ConnectionRefused as exc:
            logger.info("%s: refresh refused: %s", socket.sid, exc.message)
            return {"ok": False, "error": exc.message}
        if user != current:
            logger.info("%s: refresh refused: a token of another user", socket.sid)
            return {"ok": False, "error": "token of another user"}
        if not socket.connected:
            return {"ok": False, "error": "disconnected"}
        socket.data["claims"] = claims
        self._arm(socket)
        logger.debug("%s: token of user %s refreshed", socket.sid, user)
        return {"ok": True, "exp": claims.get("exp")}

    # ------------------------------------------------------------------ revoke

    async def revoke(
        self,
        hub: Hub,
        user_id: Any,
        reason: str = "revoked",
        *,
        namespaces: Iterable[str] | None = None,
    ) -> RevokeResult:
        """Disconnect every socket of ``user_id`` on every live node of ``hub``'s cluster.

        Each socket first gets ``revoke_event`` ``{"reason": reason}``. Nodes where the
        authenticator is installed end their sockets in that order; a final
        ``disconnect_sockets`` on the user's room catches the sockets of nodes where it
        is not (those get no event) and sockets that connected meanwhile. Revocation is
        not remembered: a client with a token that still verifies can connect again, so
        revoke the token with its issuer too (or verify against a deny list).

        Args:
            hub: this node's hub.
            user_id: the user.
            reason: sent to the client with the event.
            namespaces: the namespaces to look in (default: those this authenticator
                was installed on by name, else ``/``).

        Returns:
            How many sockets were disconnected, and the nodes that did not answer.

        Raises:
            InvalidState: the hub's broker is closed.
            BufferFull: too many cluster requests are waiting.
        """
        room = self.room_of(user_id)
        names = list(namespaces) if namespaces is not None else (self._namespaces or ["/"])
        payload = {"reason": reason}
        total = 0
        missing: set[str] = set()
        timeout = float(getattr(hub.broker, "request_timeout", 5.0))
        for name in names:
            # Here first, then the other nodes, each in order: event, then disconnect.
            total += await _end_room(hub, name, room, self.revoke_event, payload)
            try:
                replies = await hub.timeout(timeout, namespace=name).server_side_emit_with_ack(
                    _REVOKE_SERVER_EVENT, name, room, self.revoke_event, payload
                )
            except AckTimeout as exc:
                replies = list(getattr(exc, "responses", []))
            total += sum(r for r in replies if isinstance(r, int) and not isinstance(r, bool))
            result = await hub.to(room, namespace=name).disconnect_sockets()
            total += sum(
                r for r in result.replies.values() if isinstance(r, int) and not isinstance(r, bool)
            )
            missing |= set(result.missing) | set(result.errors)
        logger.info("user %s revoked: %d sockets disconnected", user_id, total)
        return RevokeResult(total, frozenset(missing))

    def __repr__(self) -> str:
        return f"<Authenticator {self.verify!r} timers={len(self._timers)}>"


async def _end(socket: Socket, event: str, payload: Any) -> None:
    """Tell the client why, then disconnect it (the event goes out first: same session)."""
    if not socket.connected:
        return
    await socket.emit(event, payload)
    await socket.disconnect()


async def _end_room(hub: Hub, name: str, room: str, event: str, payload: Any) -> int:
    """End this node's sockets of ``room`` in namespace ``name``; returns how many."""
    ns = hub.namespaces.get(name)
    if ns is None:
        return 0
    sockets = [s for s in await ns.to(room).local.fetch_sockets() if isinstance(s, Socket)]
    for socket in sockets:
        await _end(socket, event, payload)
    return len(sockets)
