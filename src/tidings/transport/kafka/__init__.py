"""Kafka transport on aiokafka: `kafka://host:port[,host:port][?option=value...]`.

Install with `pip install 'tidings[kafka]'`. Options are listed on `KafkaConfig`; TLS and SASL
settings pass through to aiokafka (`?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512`,
credentials as `kafka://user:password@host:port`), and `?prefix=` namespaces every topic and
consumer group name. The decisions are recorded in docs/decisions/0005-kafka-transport.md.

- **Layout.** One topic, `<prefix>events`, holds every event, keyed by its partition key, so the
  events of one key stay in one partition in publish order whatever their types. Each Tidings
  group is the consumer group `<prefix><group>`; its consumers skip the types it does not
  subscribe to. Dead letters go to `<prefix>dlq.<group>`.
- **Publish** produces every envelope (CloudEvents Kafka binding, binary mode: `ce_` headers and
  `content-type`) with an idempotent producer and `acks=all`, then awaits every acknowledgement.
- **Subscribe** creates the topics, records the group's types in `<prefix>tidings.groups`,
  commits the current end offsets for a new group (it receives what is published after
  `subscribe` returns, nothing older) and joins the group.
- **Settling.** Offsets are committed only for settled records and in order per partition; a
  delivery not yet settled holds back its partition's committed offset, and the commit
  metadata lists what is settled beyond it (see `ledger`). A retry waits in place, in
  its partition, holding back later events of its key, so per-key order survives retries.

Modules: `config` (URL, options, names), `cluster` (shared clients, topics, producing, group
registry and declaration), `subscription` (a consumer group member) with `fetch`, `handout`
(per-key hand-out), `rebalance` and `commits` (group commit), `ledger` (per-partition
bookkeeping and commit metadata, pure), `delivery`, `admin` (dead letters, backlog),
`legacy` (topics of plain-JSON records as legacy sources), `transport` (the port). Only the names below are public.
"""

from __future__ import annotations

try:
    import aiokafka  # noqa: F401
except ImportError as missing:  # pragma: no cover - exercised by a test that hides aiokafka
    raise ImportError("the Kafka transport needs aiokafka: pip install 'tidings[kafka]'") from missing

from tidings.transport.kafka.config import KafkaConfig
from tidings.transport.kafka.delivery import KafkaDelivery
from tidings.transport.kafka.subscription import KafkaSubscription
from tidings.transport.kafka.transport import KafkaTransport

__all__ = ["KafkaConfig", "KafkaDelivery", "KafkaSubscription", "KafkaTransport"]
