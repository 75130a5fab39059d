"""A Socket.IO hub whose clients authenticate with a JSON Web Token (HS256).

Each connection must carry a token, in the CONNECT auth payload
(``io(url, {auth: {token}})``) or as ``Authorization: Bearer <token>``. A connected
socket is in the room ``user:<sub>``; when its token expires it gets
``tether:token_expired`` and is disconnected, unless it sent a fresh token first with
``socket.emitWithAck("tether:refresh", token)``. Needs PyJWT (``pip install
'tether[jwt]'``).

Usage::

    export JWT_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))')
    python examples/jwt_auth.py serve --port 8000
    python examples/jwt_auth.py token alice --ttl 300     # prints a token for alice

Events: ``whoami`` acks the user id and the token's expiry; ``revoke`` (with a user
id) disconnects every socket of that user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time

import jwt

from tether.realtime import Authenticator, Hub, JWTVerifier, Socket

ISSUER = "tether-example"


def make_token(secret: str, user: str, ttl: float = 300.0) -> str:
    """A token for ``user`` valid ``ttl`` seconds (what your login endpoint would do)."""
    now = time.time()
    claims = {"sub": user, "iss": ISSUER, "iat": int(now), "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def build_hub(secret: str) -> tuple[Hub, Authenticator]:
    """The hub and its authenticator, with the example's two events."""
    hub = Hub(cors_origins="*")
    auth = Authenticator(JWTVerifier(secret, issuer=ISSUER, require=("exp",)))
    auth.install(hub)

    @hub.on("whoami")
    async def whoami(socket: Socket) -> dict[str, object]:
        return {"user": socket.data["user_id"], "exp": socket.data["claims"]["exp"]}

    @hub.on("revoke")
    async def revoke(socket: Socket, user: str) -> int:
        # A real app would check that the caller may do this (an "admin" claim).
        result = await auth.revoke(hub, user, reason=f"revoked by {socket.data['user_id']}")
        return result.disconnected

    return hub, auth


async def serve(secret: str, host: str, port: int) -> None:
    hub, _ = build_hub(secret)
    async with hub.serve(host, port) as server:
        print(f"listening on http://{host}:{server.port}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tether JWT authentication example")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="run the hub")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8000)
    minting = commands.add_parser("token", help="print a token for a user")
    minting.add_argument("user")
    minting.add_argument("--ttl", type=float, default=300.0)
    args = parser.parse_args(argv)
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        print("set JWT_SECRET (32 random bytes in hex, for instance)", file=sys.stderr)
        return 2
    if args.command == "token":
        print(make_token(secret, args.user, args.ttl))
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(secret, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
