"""The Kafka transport's URL, options and import hint, without a broker."""

from __future__ import annotations

import importlib
import ssl
import sys

import pytest

from tidings.errors import ConfigurationError
from tidings.transport.kafka.config import KafkaConfig, check_group


def test_url_with_several_brokers_and_options() -> None:
    config = KafkaConfig.from_url(
        "kafka://k1:9092,k2:9093?prefix=test123.&partitions=12&session_timeout_ms=6000&revoke_grace=1.5"
    )
    assert config.bootstrap == ("k1:9092", "k2:9093")
    assert config.prefix == "test123."
    assert config.partitions == 12
    assert config.session_timeout_ms == 6000
    assert config.revoke_grace == 1.5
    assert config.events_topic == "test123.events"
    assert config.dlq_topic("billing") == "test123.dlq.billing"
    assert config.group_id("billing") == "test123.billing"


def test_sasl_credentials_pass_through_to_the_clients() -> None:
    config = KafkaConfig.from_url(
        "kafka://alice:s%40cret@broker:9092?security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512"
    )
    options = config.client_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("alice", "s@cret")
    assert "ssl_context" not in options


def test_tls_builds_an_ssl_context() -> None:
    config = KafkaConfig.from_url("kafka://broker:9093?security_protocol=SSL&ssl_check_hostname=false")
    context = config.client_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is False


@pytest.mark.parametrize(
    "url",
    [
        "amqp://broker",
        "kafka://",
        "kafka://broker:9092?colour=blue",
        "kafka://broker:9092?partitions=many",
        "kafka://broker:9092?partitions=0",
        "kafka://broker:9092?prefix=no/slashes",
        "kafka://broker:9092?security_protocol=TLS",
        "kafka://broker:9092?session_timeout_ms=6000&heartbeat_interval_ms=6000",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        KafkaConfig.from_url(url)


@pytest.mark.parametrize("group", ["", "has space", "slash/ed", "x" * 201])
def test_group_names_must_be_legal_in_topic_names(group: str) -> None:
    with pytest.raises(ConfigurationError):
        check_group(group)


def test_missing_aiokafka_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)
    monkeypatch.delitem(sys.modules, "tidings.transport.kafka", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'tidings\[kafka\]'"):
        importlib.import_module("tidings.transport.kafka")
