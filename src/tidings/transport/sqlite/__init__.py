"""The embedded durable broker: one SQLite file in WAL mode, shared by processes on one machine.

`sqlite:///relative/path.db` or `sqlite:////absolute/path.db`, options in the query
(`?lease=5`, see `SqliteConfig`). Zero setup: the file and its schema are created on first use.

- `publish` inserts the messages and, in the same transaction, one delivery row per group
  subscribed to each type (fan-out); it returns after the commit. A type no group subscribes to
  is not stored, as an exchange without bindings drops it.
- A subscription claims up to `prefetch` deliveries at a time with a lease. A heartbeat renews
  the leases of everything it holds, so a slow handler keeps its delivery; when its process dies
  the lease runs out and another consumer gets the delivery with `attempt + 1`. Closing a
  subscription hands its unsettled deliveries back at once.
- Settlements from all subscriptions of a transport are committed together by one flusher
  (group commit); `await delivery.ack()` returns only after its commit.

All SQLite work runs on one worker thread per transport, which owns the connection: the event
loop never blocks on the database, and no connection is shared between threads.

Modules: `config` (URL and options), `codec` (envelope <-> row), `store` (tables, and the
statements that publish, claim and settle), `admin` (dead letters, backlog), `worker` (thread,
group commit, lease renewal), `consumer` (subscription, delivery), `transport` (the port).
Only the names below are public.
"""

from tidings.transport.sqlite.config import SqliteConfig
from tidings.transport.sqlite.consumer import SqliteDelivery, SqliteSubscription
from tidings.transport.sqlite.transport import SqliteTransport

__all__ = ["SqliteConfig", "SqliteDelivery", "SqliteSubscription", "SqliteTransport"]
