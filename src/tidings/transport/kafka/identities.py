"""Least-privilege Kafka users, one per service, from `tidings.security.identities` plans.

Each service gets a SCRAM-SHA-512 credential and ALLOW ACLs on literal resources only:

- the events topic and the group registry topic: Read, Write, Describe, Create;
- its own dead-letter topic `<prefix>dlq.<group>`: Read, Write, Describe, Create;
- its own consumer group `<prefix><group>`: Read, Describe;
- with legacy sources (`Identity.queues`, on Kafka topics of plain JSON): those topics and the
  consumer group `<prefix><group>.legacy` that reads them (`kafka.legacy`): Read, Describe.

With `allow.everyone.if.no.acl.found=false`, anything else is refused: another group's offsets
(GROUP_AUTHORIZATION_FAILED), another service's dead letters or any other topic
(TOPIC_AUTHORIZATION_FAILED). Kafka has one events topic for every type, so which *types* a
service writes is not something an ACL can say: signed events (`tidings.security`) bind each
event to its producer instead.

Provisioning uses the admin API of `confluent-kafka` (librdkafka), which aiokafka lacks (no
ACL or SCRAM requests); the transport itself keeps using aiokafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tidings.errors import ConfigurationError, TransportError
from tidings.security.identities import Identity
from tidings.transport.kafka.config import KafkaConfig
from tidings.transport.kafka.legacy import legacy_group

ITERATIONS = 8192


def acls(config: KafkaConfig, identity: Identity) -> list[tuple[str, str, str]]:
    """(resource type, literal resource name, operation) triples `identity` is allowed."""
    topics = (config.events_topic, config.registry_topic, config.dlq_topic(identity.group))
    grants = [("topic", topic, operation) for topic in topics for operation in ("read", "write", "describe", "create")]
    grants += [("group", config.group_id(identity.group), operation) for operation in ("read", "describe")]
    if identity.queues:
        grants += [("topic", topic, operation) for topic in identity.queues for operation in ("read", "describe")]
        grants += [("group", config.group_id(legacy_group(identity.group)), op) for op in ("read", "describe")]
    return grants


def admin_options(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings equivalent to `config`'s connection options."""
    options: dict[str, Any] = {
        "bootstrap.servers": ",".join(config.bootstrap),
        "security.protocol": config.security_protocol,
    }
    if config.security_protocol.startswith("SASL"):
        options.update(
            {
                "sasl.mechanism": config.sasl_mechanism,
                "sasl.username": config.sasl_plain_username or "",
                "sasl.password": config.sasl_plain_password or "",
            }
        )
    if config.security_protocol.endswith("SSL") and config.ssl_cafile:
        options["ssl.ca.location"] = config.ssl_cafile
    return options


async def apply(admin_url: str, identities: Sequence[Identity]) -> None:
    """Create or update each identity's SCRAM credential and ACLs on the cluster of `admin_url`
    (a super user's `kafka://` URL; its `prefix` is the one the services use). Idempotent."""
    await asyncio.to_thread(_apply, KafkaConfig.from_url(admin_url), identities)


def _apply(config: KafkaConfig, identities: Sequence[Identity]) -> None:
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (  # type: ignore[attr-defined]  # its stubs omit these names
            AclBinding,
            AclOperation,
            AclPermissionType,
            AdminClient,
            ResourcePatternType,
            ResourceType,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )
    except ImportError:
        raise ConfigurationError(
            "provisioning Kafka users needs confluent-kafka: pip install 'tidings[security]'"
        ) from None
    admin = AdminClient(admin_options(config))
    mechanism = (
        ScramMechanism.SCRAM_SHA_512 if config.sasl_mechanism != "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_256
    )
    upserts: list[UserScramCredentialAlteration] = [  # the type its stubs ask for
        UserScramCredentialUpsertion(
            identity.user, ScramCredentialInfo(mechanism, ITERATIONS), identity.password.encode()
        )
        for identity in identities
    ]
    bindings = [
        AclBinding(
            ResourceType[kind.upper()],
            name,
            ResourcePatternType.LITERAL,
            f"User:{identity.user}",
            "*",
            AclOperation[operation.upper()],
            AclPermissionType.ALLOW,
        )
        for identity in identities
        for kind, name, operation in acls(config, identity)
    ]
    try:
        for future in [*admin.alter_user_scram_credentials(upserts).values(), *admin.create_acls(bindings).values()]:
            future.result(timeout=30)
    except KafkaException as error:
        raise TransportError(
            f"provisioning Kafka users failed: {error.args[0].str() if error.args else error}"
        ) from None
