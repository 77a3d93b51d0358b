"""The embedded durable broker: one SQLite file in WAL mode, shared by processes on one machine.

`sqlite:///relative/path.db` or `sqlite:////absolute/path.db`, options in the query
(`?lease=5`, see `SqliteConfig`). Zero setup: the file and its schema are created on first use.

- `publish` inserts the messages and, in the same transaction, one delivery row per group
  subscribed to each type (fan-out); it returns after the commit. A type no group subscribes to
  is not stored, as an exchange without bindings drops it.
- A subscription claims up to `prefetch` deliveries at a time with a lease. A heartbeat renews
  the leases of everything it holds, so a slow handler keeps its delivery. When its process
  dies, the other consumers on the machine notice within about half a second and its
  deliveries are claimable again at once, with `attempt + 1`; a process that is alive but
  frozen loses them when the lease runs out. Closing a subscription hands its unsettled
  deliveries back at once.
- Each subscription is a *member* of its group and records the types it subscribes (`members`):
  it claims those, and any type no live member of the group subscribes any more, so a type a
  deploy stopped handling is dead-lettered by the runtime instead of blocking its key.
- Publishes and settlements queued on a transport (by any of its tasks and subscriptions) are
  committed together by one writer (group commit); `await publish(...)` and
  `await delivery.ack()` return only after the commit holding their work.

All SQLite work runs on one worker thread per transport, which owns the connection: the event
loop never blocks on the database, and no connection is shared between threads.

Modules: `config` (URL and options), `codec` (envelope <-> row), `schema` (tables, versions),
`store` (the statements that publish, claim and settle), `members` (who subscribes what, dead
processes), `admin` (dead letters, backlog), `worker` (thread, group commit, lease renewal),
`consumer` (subscription, delivery), `transport` (the port).
Only the names below are public.
"""

from tidings.transport.sqlite.config import SqliteConfig
from tidings.transport.sqlite.consumer import SqliteDelivery, SqliteSubscription
from tidings.transport.sqlite.transport import SqliteTransport

__all__ = ["SqliteConfig", "SqliteDelivery", "SqliteSubscription", "SqliteTransport"]
