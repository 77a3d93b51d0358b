"""No credential in an error or a repr: every URL Tidings shows goes through `redact`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tidings.errors import ConfigurationError
from tidings.security import Identity
from tidings.security.identities import plan
from tidings.service import Service
from tidings.store.database import normalise_url
from tidings.transport.base import connect
from tidings.transport.kafka.config import KafkaConfig
from tidings.transport.rabbitmq.config import RabbitConfig
from tidings.transport.urls import redact

SECRET = "S3cr3t-Pw-77"

FAILURES: list[tuple[str, Callable[[], object]]] = [
    ("unknown scheme", lambda: asyncio.run(connect(f"foo://u:{SECRET}@h/"))),
    ("rabbitmq option", lambda: RabbitConfig.from_url(f"amqp://u:{SECRET}@h/?bogus=1")),
    ("rabbitmq number", lambda: RabbitConfig.from_url(f"amqp://u:{SECRET}@h/?publish_timeout=x&x_token={SECRET}")),
    ("kafka option", lambda: KafkaConfig.from_url(f"kafka://u:{SECRET}@h:1?bogus=1")),
    ("kafka number", lambda: KafkaConfig.from_url(f"kafka://u:{SECRET}@h:1?ssl_password={SECRET}&partitions=x")),
    ("kafka secret number", lambda: KafkaConfig.from_url(f"kafka://u:{SECRET}@h:1?sasl_plain_password={SECRET}&x=1")),
    ("database URL", lambda: normalise_url(f"nosuch://u:{SECRET}@h/db")),
]


@pytest.mark.parametrize("make", [make for _, make in FAILURES], ids=[name for name, _ in FAILURES])
def test_configuration_errors_never_show_a_password(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError) as error:
        make()
    assert SECRET not in str(error.value)
    assert "\n" not in str(error.value)


def test_reprs_never_show_a_password() -> None:
    kafka = KafkaConfig.from_url(f"kafka://u:{SECRET}@h:1?security_protocol=SASL_SSL&ssl_password={SECRET}")
    rabbit = RabbitConfig.from_url(f"amqps://u:{SECRET}@h/?cafile=/ca.pem")
    [identity] = plan([Service("orders")], passwords={"orders": SECRET})
    for shown in (repr(kafka), repr(rabbit), repr(identity), repr(Identity("a", "a", SECRET, "a"))):
        assert SECRET not in shown
    assert "u:***@h" in repr(rabbit)


def test_redaction_hides_the_password_and_secret_query_values_and_keeps_the_rest() -> None:
    url = f"amqps://u:{SECRET}@h:5671/v?cafile=/ca.pem&api_token={SECRET}&sslpassword={SECRET}&heartbeat=5"
    assert redact(url) == "amqps://u:***@h:5671/v?cafile=/ca.pem&api_token=***&sslpassword=***&heartbeat=5"
    assert redact(f"postgresql://u:{SECRET}@a:5432,b:5432/db") == "postgresql://u:***@a:5432,b:5432/db"
