"""`lease.holds`: when a SQLite relay may publish on the lease it read from a snapshot, without
taking it again in a write transaction first."""

from __future__ import annotations

from tidings.store import lease
from tidings.store.relay_view import RelayView

ME, OTHER, TTL, NOW = "host:1:me", "host:2:other", 30.0, 1_000.0


def _view(holder: str | None, until: float) -> RelayView:
    return RelayView(holder=holder, lease_until=until, rows=[])


def test_a_lease_of_mine_lasting_more_than_half_its_length_is_held() -> None:
    assert lease.holds(_view(ME, NOW + TTL / 2 + 0.001), ME, ttl=TTL, now=NOW)


def test_a_lease_due_for_renewal_or_expired_is_not_held() -> None:
    """`acquire` renews a lease once half of it is gone; reading it must send the relay there."""
    assert not lease.holds(_view(ME, NOW + TTL / 2), ME, ttl=TTL, now=NOW)
    assert not lease.holds(_view(ME, NOW - 1), ME, ttl=TTL, now=NOW)


def test_another_holder_no_holder_or_no_row_is_not_held() -> None:
    assert not lease.holds(_view(OTHER, NOW + TTL), ME, ttl=TTL, now=NOW)
    assert not lease.holds(_view(None, NOW + TTL), ME, ttl=TTL, now=NOW)
    assert not lease.holds(None, ME, ttl=TTL, now=NOW)
