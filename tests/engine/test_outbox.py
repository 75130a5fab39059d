"""The outbox of a session, alone (no loop): caps in bytes and messages, and what each
slow-consumer policy does at the cap."""

from __future__ import annotations

import pytest

from tether.engine.outbox import POLICIES, Outbox, check_policy
from tether.exceptions import InvalidOption


def items(box: Outbox[str]) -> list[str]:
    return list(box)


def test_under_the_cap_every_policy_queues_in_order() -> None:
    box: Outbox[str] = Outbox(max_bytes=100, max_items=10)
    for i, policy in enumerate(("wait", "drop_oldest", "disconnect")):
        assert box.push(f"m{i}", 10, policy) == "queued"
    assert box.push("c", 10, "coalesce", "k") == "queued"
    assert items(box) == ["m0", "m1", "m2", "c"]
    assert (len(box), box.bytes) == (4, 40)
    assert box.popleft() == "m0"
    assert box.take_all() == ["m1", "m2", "c"]
    assert (len(box), box.bytes) == (0, 0)


def test_disconnect_overflows_at_the_byte_cap_and_queues_nothing() -> None:
    box: Outbox[str] = Outbox(max_bytes=30, max_items=100)
    assert box.push("a", 20, "disconnect") == "queued"
    assert box.push("b", 20, "disconnect") == "overflow"
    assert items(box) == ["a"] and box.bytes == 20


def test_the_message_cap_counts_too() -> None:
    box: Outbox[str] = Outbox(max_bytes=10**6, max_items=2)
    box.push("a", 1, "disconnect")
    box.push("b", 1, "disconnect")
    assert box.full
    assert box.push("c", 1, "disconnect") == "overflow"


def test_drop_oldest_evicts_only_droppable_messages() -> None:
    box: Outbox[str] = Outbox(max_bytes=30, max_items=100)
    box.push("keep", 10, "disconnect")
    box.push("old1", 10, "drop_oldest")
    box.push("old2", 10, "drop_oldest")
    assert box.push("new", 15, "drop_oldest") == "dropped"
    assert box.evicted == 2  # 15 bytes needed two evictions
    assert items(box) == ["keep", "new"]
    assert box.bytes == 25


def test_drop_oldest_drops_the_new_message_when_nothing_can_make_room() -> None:
    box: Outbox[str] = Outbox(max_bytes=30, max_items=100)
    box.push("a", 15, "disconnect")
    box.push("b", 15, "wait")
    assert box.push("new", 5, "drop_oldest") == "dropped"
    assert box.evicted == 0
    assert items(box) == ["a", "b"]


def test_coalesce_keeps_the_latest_per_key_in_the_first_ones_place() -> None:
    box: Outbox[str] = Outbox(max_bytes=1000, max_items=100)
    box.push("AAPL=1", 6, "coalesce", "AAPL")
    box.push("MSFT=1", 6, "coalesce", "MSFT")
    assert box.push("AAPL=22", 7, "coalesce", "AAPL") == "coalesced"
    assert box.push("AAPL=333", 8, "coalesce", "AAPL") == "coalesced"
    assert items(box) == ["AAPL=333", "MSFT=1"]
    assert box.bytes == 14
    assert box.popleft() == "AAPL=333"
    # Once sent, a key starts again at the tail.
    assert box.push("AAPL=4", 6, "coalesce", "AAPL") == "queued"
    assert items(box) == ["MSFT=1", "AAPL=4"]


def test_a_thousand_updates_of_ten_keys_hold_ten_messages() -> None:
    box: Outbox[str] = Outbox(max_bytes=10**6, max_items=1000)
    for i in range(1000):
        box.push(f"{i % 10}:{i}", 8, "coalesce", str(i % 10))
    assert items(box) == [f"{k}:{990 + k}" for k in range(10)]


def test_coalesce_at_the_cap_evicts_like_drop_oldest() -> None:
    box: Outbox[str] = Outbox(max_bytes=20, max_items=100)
    box.push("a", 10, "coalesce", "a")
    box.push("b", 10, "coalesce", "b")
    assert box.push("c", 10, "coalesce", "c") == "dropped"
    assert box.evicted == 1
    assert items(box) == ["b", "c"]
    assert box.push("a2", 10, "coalesce", "a") == "dropped"  # "a" was evicted: new key
    assert items(box) == ["c", "a2"]


def test_wait_may_pass_the_cap_up_to_twice_then_overflows() -> None:
    box: Outbox[str] = Outbox(max_bytes=100, max_items=1000)
    for _ in range(10):
        assert box.push("w", 10, "wait") == "queued"
    assert box.full
    for _ in range(10):
        assert box.push("w", 10, "wait") == "queued"
    assert box.push("w", 10, "wait") == "overflow"
    assert box.bytes == 200


def test_control_items_are_never_dropped_or_evicted() -> None:
    box: Outbox[str] = Outbox(max_bytes=10, max_items=1)
    box.append("open", 50)
    box.append("noop", 1)
    assert box.push("x", 1, "drop_oldest") == "dropped"
    assert items(box) == ["open", "noop"]


def test_policies_are_checked() -> None:
    assert set(POLICIES) == {"wait", "drop", "drop_oldest", "coalesce", "disconnect"}
    assert check_policy(None) is None
    assert check_policy("coalesce", "k") == "coalesce"
    with pytest.raises(InvalidOption, match="unknown slow-consumer policy"):
        check_policy("block")
    with pytest.raises(InvalidOption, match="needs a key"):
        check_policy("coalesce")
    with pytest.raises(InvalidOption):
        check_policy("drop", "k")
    with pytest.raises(InvalidOption):
        check_policy(None, "k")
