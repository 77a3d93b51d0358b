"""`tidings.transport.urls`: redaction of broker URLs and the option parsing adapters share."""

from __future__ import annotations

import pytest

from tidings.errors import ConfigurationError
from tidings.transport import urls
from tidings.transport.urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:s3cret@broker:5672/vhost", "amqp://guest:***@broker:5672/vhost"),
        ("amqps://u:p%40ss@broker/shop%2Fprod?heartbeat=15", "amqps://u:***@broker/shop%2Fprod?heartbeat=15"),
        ("kafka://alice:pw@k1:9092,k2:9093?prefix=t.", "kafka://alice:***@k1:9092,k2:9093?prefix=t."),
        ("postgresql+asyncpg://app:hunter2@[::1]:5432/db", "postgresql+asyncpg://app:***@[::1]:5432/db"),
        ("amqp://:onlypw@h/", "amqp://:***@h/"),
    ],
)
def test_the_password_is_hidden(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "kafka://k:9092?security_protocol=SASL_SSL&ssl_password=pw&sasl_plain_password=x",
            "kafka://k:9092?security_protocol=SASL_SSL&ssl_password=***&sasl_plain_password=***",
        ),
        ("amqp://h/?keyfile=/etc/k.pem&cafile=/ca.pem", "amqp://h/?keyfile=***&cafile=/ca.pem"),
        ("memory://x?API_TOKEN=abc&lease=2", "memory://x?API_TOKEN=***&lease=2"),
        ("kafka://k:9092?Client_Secret=s&sasl_mechanism=PLAIN", "kafka://k:9092?Client_Secret=***&sasl_mechanism=***"),
        ("amqp://u:pw@h/?passphrase=z#frag", "amqp://u:***@h/?passphrase=***#frag"),
    ],
)
def test_secret_query_values_are_hidden_and_the_others_kept(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "amqp://broker:5672/",
        "amqp://guest@broker/",
        "sqlite:///data/broker.db?lease=2.5",
        "sqlite:////var/tmp/broker.db",
        "memory://name",
        "kafka://k1:9092,k2:9093?prefix=a.&partitions=12",
        "amqp://h/?",
        "",
    ],
)
def test_a_url_without_secrets_is_unchanged(url: str) -> None:
    assert redact(url) == url


def test_errors_about_a_url_never_show_its_secrets() -> None:
    url = "kafka://alice:pw@k:9092?ssl_password=topsecret&partitions=many"
    with pytest.raises(ConfigurationError) as caught:
        urls.number(url, "partitions", "many", "Kafka", int)
    message = str(caught.value)
    assert "pw@" not in message
    assert "topsecret" not in message
    assert "partitions='many'" in message


def test_credentials_of_an_authority_with_several_hosts() -> None:
    assert urls.credentials("alice:s%40cret@k1:9092,k2:9093") == ("alice", "s@cret", "k1:9092,k2:9093")
    assert urls.credentials("k1:9092") == (None, None, "k1:9092")
    assert urls.credentials("bob@h") == ("bob", None, "h")


async def test_an_unknown_scheme_is_refused_without_echoing_the_password() -> None:
    from tidings.transport import connect

    with pytest.raises(ConfigurationError) as refused:
        await connect("amqpx://shop:s3cret-pass@broker:5672/?token=abc123")
    assert "s3cret-pass" not in str(refused.value)
    assert "abc123" not in str(refused.value)
    assert str(refused.value).startswith("unknown broker URL scheme in 'amqpx://shop:")
