"""`KeyGate`, the in-process per-key hold-back of the memory transport and RabbitMQ's
`ordering=key`: one item per key out at a time, the rest in arrival order, keyless items free."""

from __future__ import annotations

from tidings.transport.keys import KeyGate


def test_one_item_per_key_is_out_and_the_rest_follow_in_arrival_order() -> None:
    gate: KeyGate[str] = KeyGate()
    assert gate.admit("k", "k1")
    assert not gate.admit("k", "k2")
    assert not gate.admit("k", "k3")
    assert gate.admit("j", "j1")  # another key is not held back
    assert gate.release("k") == "k2"
    assert gate.release("k") == "k3"
    assert gate.release("k") is None
    assert gate.admit("k", "k4")  # the key is free again


def test_a_released_follower_holds_the_key_in_turn() -> None:
    gate: KeyGate[str] = KeyGate()
    gate.admit("k", "k1")
    gate.admit("k", "k2")
    assert gate.release("k") == "k2"
    assert not gate.admit("k", "k3")  # k2 is out now
    assert gate.release("k") == "k3"
    assert gate.release("k") is None
    assert gate.admit("k", "k5")


def test_keyless_items_pass_and_release_nothing() -> None:
    gate: KeyGate[str] = KeyGate()
    assert gate.admit(None, "a")
    assert gate.admit(None, "b")
    gate.admit("k", "k1")
    gate.admit("k", "k2")
    assert gate.release(None) is None
    assert gate.release("k") == "k2"  # a keyless release took nothing from a key


def test_releasing_one_key_leaves_the_others_waiting() -> None:
    gate: KeyGate[str] = KeyGate()
    for item in ("a1", "a2", "b1", "b2"):
        gate.admit(item[0], item)
    assert gate.release("a") == "a2"
    assert gate.release("a") is None
    assert not gate.admit("b", "b3")
    assert gate.release("b") == "b2"


def test_clear_forgets_every_key_and_every_waiting_item() -> None:
    gate: KeyGate[str] = KeyGate()
    gate.admit("k", "k1")
    gate.admit("k", "k2")
    gate.admit("j", "j1")
    gate.clear()
    assert gate.admit("j", "j2")
    assert gate.admit("k", "k3")
    assert gate.release("k") is None  # k2 is not handed out: its message is back at the broker
