"""Members of a group: the live subscriptions, which types each subscribed, and which process.

A subscription joins its group when it is made (one `members` row, one `member_types` row per
type, and the durable (group, type) `subscriptions` rows that fan-out follows, all in one
transaction), renews its row with its leases, and leaves when it closes. What that buys:

- **A type no live member subscribes is anybody's.** Fan-out targets every type a group ever
  subscribed, so after a deploy that drops a handler its deliveries keep coming; the claim
  (`store._CLAIM`) hands them to any member of the group, whose runtime dead-letters them as
  `unknown-type`, so they never hold back the later deliveries of their partition key. While a
  live member does subscribe the type (a rolling deploy adding one), the others leave it alone.
- **A dead process's deliveries come back at once.** The broker file lives on one machine, so a
  member records its host and process id; `reap` finds the members of this host whose process
  no longer exists and makes their leased deliveries claimable immediately, instead of after the
  lease (the relay's lease does the same, `tidings.store.lease`). A member that is alive but
  frozen, or on another host, still loses its deliveries only when their lease runs out.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tidings.transport.sqlite.store import Store

HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Member:
    """One subscription as its group sees it: its lease owner name, its group, its types."""

    owner: str
    group: str
    types: tuple[str, ...]


def join(store: Store, member: Member, now: float, until: float) -> None:
    """Declare the group's types durably and record `member` as live until `until`."""
    with store.write() as db:
        db.executemany(
            "INSERT OR IGNORE INTO subscriptions (grp, type, created_at) VALUES (?, ?, ?)",
            [(member.group, type, now) for type in member.types],
        )
        _insert(db, member, until)


def renew(store: Store, members: Sequence[Member], until: float) -> None:
    """Heartbeat: keep `members` live until `until` (one whose row was removed joins again)."""
    with store.write() as db:
        for member in members:
            if db.execute("UPDATE members SET alive_until = ? WHERE owner = ?", (until, member.owner)).rowcount == 0:
                _insert(db, member, until)


def leave(store: Store, owners: Collection[str]) -> None:
    with store.write() as db:
        _delete(db, owners)


def reap(store: Store, now: float) -> int:
    """Forget expired members and those of this host whose process has exited; hand the latter's
    leased deliveries back at once. Returns how many deliveries came back."""
    rows = store.read("SELECT owner, host, pid, alive_until FROM members")
    dead = [owner for owner, host, pid, _ in rows if host == HOST and _gone(pid)]
    expired = [owner for owner, _, _, alive_until in rows if alive_until <= now and owner not in dead]
    if not dead and not expired:
        return 0  # the usual case: a plain read, no write lock taken
    released = 0
    with store.write() as db:
        for owner in dead:
            released += db.execute(
                "UPDATE deliveries SET state = 'ready', available_at = ?, lease_owner = NULL"
                " WHERE state = 'leased' AND lease_owner = ?",
                (now, owner),
            ).rowcount
        _delete(db, [*dead, *expired])
    return released


def _insert(db: sqlite3.Connection, member: Member, until: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO members (owner, grp, host, pid, alive_until) VALUES (?, ?, ?, ?, ?)",
        (member.owner, member.group, HOST, os.getpid(), until),
    )
    db.executemany(
        "INSERT OR IGNORE INTO member_types (grp, type, owner) VALUES (?, ?, ?)",
        [(member.group, type, member.owner) for type in member.types],
    )


def _delete(db: sqlite3.Connection, owners: Collection[str]) -> None:
    for owner in owners:
        db.execute("DELETE FROM member_types WHERE owner = ?", (owner,))
        db.execute("DELETE FROM members WHERE owner = ?", (owner,))


def _gone(pid: int) -> bool:
    """Whether process `pid` of this host has exited (this process never has)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
