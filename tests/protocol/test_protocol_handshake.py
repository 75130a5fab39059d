"""RFC 6455 section 4: the opening handshake, server and client side, without I/O."""

from __future__ import annotations

import base64

import pytest

from tether.exceptions import (
    InvalidRequest,
    InvalidResponse,
    InvalidStatus,
    NegotiationError,
)
from tether.protocol import (
    Headers,
    Request,
    Response,
    accept_key,
    build_client_request,
    check_client_response,
    server_accept,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade_request(
    *,
    method: str = "GET",
    http_version: str = "1.1",
    drop: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    """A valid upgrade request, with headers dropped, replaced or added."""
    base = {
        "Host": "example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": RFC_KEY,
        "Sec-WebSocket-Version": "13",
    }
    base.update(replace or {})
    items = [(k, v) for k, v in base.items() if k not in drop]
    items.extend(extra)
    return Request(method, "/chat?room=1", Headers(items), http_version=http_version)


def response_headers(accepted: object) -> Headers:
    headers = accepted.response.headers  # type: ignore[attr-defined]
    assert isinstance(headers, Headers)
    return headers


# ---------------------------------------------------------------------------- server side


def test_rfc6455_1_3_accept_key_of_the_rfc_example() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_rfc6455_4_2_2_valid_request_is_answered_with_101() -> None:
    accepted = server_accept(upgrade_request())
    response = accepted.response
    assert response.status == 101
    headers = response_headers(accepted)
    assert headers["Sec-WebSocket-Accept"] == RFC_ACCEPT
    assert "websocket" in headers.tokens("Upgrade")
    assert "upgrade" in headers.tokens("Connection")
    assert accepted.subprotocol is None
    assert accepted.deflate is None
    wire = response.serialize()
    assert wire.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() in wire


def test_rfc6455_4_2_1_request_target_keeps_path_and_query() -> None:
    request = upgrade_request()
    assert request.path == "/chat"
    assert request.query == "room=1"


def test_rfc6455_4_2_1_non_get_method_is_rejected_with_405() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(method="POST"))
    assert info.value.status == 405


def test_rfc6455_4_2_1_http_1_0_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(http_version="1.0"))
    assert info.value.status == 400


def test_rfc6455_4_2_1_missing_host_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(drop=("Host",)))
    assert info.value.status == 400


def test_rfc6455_4_2_1_missing_upgrade_is_rejected_with_426() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(drop=("Upgrade",)))
    assert info.value.status == 426
    names = {name.lower() for name, _ in info.value.headers}
    assert "upgrade" in names


def test_rfc6455_4_2_1_upgrade_to_another_protocol_is_rejected_with_426() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(replace={"Upgrade": "h2c"}))
    assert info.value.status == 426


def test_rfc6455_4_2_1_connection_without_upgrade_token_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(replace={"Connection": "keep-alive"}))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "value", ["keep-alive, Upgrade", "KEEP-ALIVE,UPGRADE", "upgrade", "Upgrade ,keep-alive"]
)
def test_rfc6455_4_2_1_connection_upgrade_token_is_case_insensitive_in_a_list(value: str) -> None:
    accepted = server_accept(upgrade_request(replace={"Connection": value}))
    assert accepted.response.status == 101


def test_rfc6455_4_2_1_upgrade_value_is_case_insensitive() -> None:
    accepted = server_accept(upgrade_request(replace={"Upgrade": "WebSocket"}))
    assert accepted.response.status == 101


@pytest.mark.parametrize("version", ["8", "12", "14", "", "13, 8"])
def test_rfc6455_4_4_unsupported_version_gets_426_and_the_supported_version(version: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(replace={"Sec-WebSocket-Version": version}))
    assert info.value.status == 426
    assert ("sec-websocket-version", "13") in [
        (name.lower(), value) for name, value in info.value.headers
    ]


def test_rfc6455_4_4_missing_version_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(drop=("Sec-WebSocket-Version",)))
    assert info.value.status == 426


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not base64!!",
        base64.b64encode(b"x" * 15).decode(),  # 15 bytes
        base64.b64encode(b"x" * 17).decode(),  # 17 bytes
        "dGhlIHNhbXBsZSBub25jZQ",  # missing padding
        "dGhlIHNhbXBsZSBub25jZQ==" + "AAAA",
    ],
)
def test_rfc6455_4_2_1_key_must_be_base64_of_16_bytes(key: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(replace={"Sec-WebSocket-Key": key}))
    assert info.value.status == 400


def test_rfc6455_4_2_1_missing_key_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(drop=("Sec-WebSocket-Key",)))
    assert info.value.status == 400


def test_rfc6455_4_2_1_repeated_key_is_rejected() -> None:
    other = base64.b64encode(b"y" * 16).decode()
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(extra=(("Sec-WebSocket-Key", other),)))
    assert info.value.status == 400


def test_rfc6455_10_2_origin_in_allow_list_is_accepted() -> None:
    request = upgrade_request(extra=(("Origin", "https://good.example"),))
    accepted = server_accept(request, origins=["https://good.example"])
    assert accepted.response.status == 101


def test_rfc6455_10_2_origin_not_in_allow_list_gets_403() -> None:
    request = upgrade_request(extra=(("Origin", "https://evil.example"),))
    with pytest.raises(InvalidRequest) as info:
        server_accept(request, origins=["https://good.example"])
    assert info.value.status == 403


def test_rfc6455_10_2_missing_origin_needs_none_in_allow_list() -> None:
    with pytest.raises(InvalidRequest) as info:
        server_accept(upgrade_request(), origins=["https://good.example"])
    assert info.value.status == 403
    accepted = server_accept(upgrade_request(), origins=["https://good.example", None])
    assert accepted.response.status == 101


def test_rfc6455_10_2_no_allow_list_accepts_any_origin() -> None:
    request = upgrade_request(extra=(("Origin", "https://anything.example"),))
    assert server_accept(request).response.status == 101


def test_rfc6455_4_2_2_subprotocol_is_the_servers_first_preference_offered() -> None:
    request = upgrade_request(extra=(("Sec-WebSocket-Protocol", "chat, superchat"),))
    accepted = server_accept(request, subprotocols=["superchat", "chat"])
    assert accepted.subprotocol == "superchat"
    assert response_headers(accepted).get_all("Sec-WebSocket-Protocol") == ["superchat"]


def test_rfc6455_4_2_2_subprotocol_offers_in_several_headers() -> None:
    request = upgrade_request(
        extra=(("Sec-WebSocket-Protocol", "a"), ("Sec-WebSocket-Protocol", "b"))
    )
    accepted = server_accept(request, subprotocols=["b"])
    assert accepted.subprotocol == "b"


def test_rfc6455_4_2_2_no_common_subprotocol_means_no_header() -> None:
    request = upgrade_request(extra=(("Sec-WebSocket-Protocol", "chat"),))
    accepted = server_accept(request, subprotocols=["other"])
    assert accepted.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in response_headers(accepted)


def test_rfc6455_4_2_2_subprotocol_not_chosen_when_server_has_none() -> None:
    request = upgrade_request(extra=(("Sec-WebSocket-Protocol", "chat"),))
    accepted = server_accept(request)
    assert accepted.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in response_headers(accepted)


# ---------------------------------------------------------------------------- client side


def client_request(**kwargs: object) -> Request:
    return build_client_request("example.com:8080", "/ws?x=1", RFC_KEY, **kwargs)  # type: ignore[arg-type]


def good_response(**extra: str) -> Response:
    items = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT),
    ]
    items.extend(extra.items())
    return Response(101, Headers(items))


def test_rfc6455_4_1_client_request_is_accepted_by_the_server() -> None:
    request = client_request(subprotocols=["chat"], origin="https://a.example")
    assert request.method == "GET"
    assert request.target == "/ws?x=1"
    headers = request.headers
    assert headers["Host"] == "example.com:8080"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["Origin"] == "https://a.example"
    accepted = server_accept(request, subprotocols=["chat"], origins=["https://a.example"])
    assert accepted.subprotocol == "chat"
    assert request.serialize().startswith(b"GET /ws?x=1 HTTP/1.1\r\n")


def test_rfc6455_4_1_client_accepts_a_valid_101() -> None:
    subprotocol, deflate = check_client_response(good_response(), RFC_KEY)
    assert subprotocol is None
    assert deflate is None


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 426, 500, 503])
def test_rfc6455_4_1_non_101_raises_invalid_status_with_status_headers_body(status: int) -> None:
    response = Response(status, [("X-Why", "because"), ("Content-Type", "text/plain")], b"no")
    with pytest.raises(InvalidStatus) as info:
        check_client_response(response, RFC_KEY)
    assert info.value.status == status
    assert ("X-Why", "because") in info.value.headers
    assert info.value.body == b"no"


def test_rfc6455_4_1_wrong_accept_raises_invalid_response() -> None:
    response = good_response()
    headers = response.headers
    assert isinstance(headers, Headers)
    bad = Response(
        101,
        [
            (n, v if n != "Sec-WebSocket-Accept" else accept_key("AAAAAAAAAAAAAAAAAAAAAA=="))
            for n, v in headers
        ],
    )
    with pytest.raises(InvalidResponse):
        check_client_response(bad, RFC_KEY)


def test_rfc6455_4_1_missing_accept_raises_invalid_response() -> None:
    bad = Response(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    with pytest.raises(InvalidResponse):
        check_client_response(bad, RFC_KEY)


def test_rfc6455_4_1_missing_upgrade_in_101_raises_invalid_response() -> None:
    bad = Response(101, [("Connection", "Upgrade"), ("Sec-WebSocket-Accept", RFC_ACCEPT)])
    with pytest.raises(InvalidResponse):
        check_client_response(bad, RFC_KEY)


def test_rfc6455_4_1_missing_connection_upgrade_in_101_raises_invalid_response() -> None:
    bad = Response(101, [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", RFC_ACCEPT)])
    with pytest.raises(InvalidResponse):
        check_client_response(bad, RFC_KEY)


def test_rfc6455_4_1_subprotocol_not_offered_is_refused() -> None:
    response = good_response(**{"Sec-WebSocket-Protocol": "evil"})
    with pytest.raises(NegotiationError):
        check_client_response(response, RFC_KEY, subprotocols=["chat"])
    with pytest.raises(NegotiationError):
        check_client_response(response, RFC_KEY)


def test_rfc6455_4_1_offered_subprotocol_is_returned() -> None:
    response = good_response(**{"Sec-WebSocket-Protocol": "chat"})
    subprotocol, _ = check_client_response(response, RFC_KEY, subprotocols=["x", "chat"])
    assert subprotocol == "chat"


def test_rfc6455_4_1_extension_not_offered_is_refused() -> None:
    response = good_response(**{"Sec-WebSocket-Extensions": "permessage-deflate"})
    with pytest.raises(NegotiationError):
        check_client_response(response, RFC_KEY)


def test_compacted_headers_read_back_the_same_and_take_new_ones() -> None:
    items = [("Host", "a:1"), ("Cookie", "k=v; x=y"), ("X-Tag", "a, B"), ("x-tag", "c")]
    headers = Headers(items)
    assert headers.get("host") == "a:1"
    headers.compact()  # packed until read again
    assert isinstance(headers._items, str)
    assert headers.items() == items
    assert headers["COOKIE"] == "k=v; x=y"
    assert headers.get_all("x-tag") == ["a, B", "c"]
    assert headers.tokens("X-Tag") == ["a", "b", "c"]
    assert "missing" not in headers and len(headers) == 4
    headers.compact()
    headers.add("Origin", "http://o")
    assert list(headers)[-1] == ("Origin", "http://o") and headers["origin"] == "http://o"
    # A value packing could not tell apart stays a list.
    odd = Headers([("A", "x\nb"), ("B", "\0")])
    odd.compact()
    assert odd.items() == [("A", "x\nb"), ("B", "\0")]
    empty = Headers()
    empty.compact()
    assert empty.items() == [] and empty.get("a") is None
