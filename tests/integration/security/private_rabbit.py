"""A private RabbitMQ node for the security tests: plain AMQP and AMQPS (the test's PKI), and
`guest` as the administrator who provisions the per-service users the tests then connect as.

Ports 5690 (AMQP), 5691 (AMQPS), 15690 (management), 25690 (Erlang distribution); one node per
test session, stopped by the fixture's finaliser."""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from services.chaos.rabbit import PrivateRabbit
from tests.integration.security.pki import Pki

ADMIN = ("guest", "guest")


@dataclass
class SecureRabbit(PrivateRabbit):
    pki: Pki | None = None
    tls_port: int = 5691

    def admin_url(self, vhost: str) -> str:
        user, password = ADMIN
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}?management_url={self.management_url}"

    def _write_config(self) -> None:
        super()._write_config()
        assert self.pki is not None
        with (self.base / "rabbitmq.conf").open("a") as conf:
            conf.write(
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {self.pki.ca}\n"
                f"ssl_options.certfile = {self.pki.cert}\n"
                f"ssl_options.keyfile = {self.pki.key}\n"
                "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
            )
        with contextlib.suppress(KeyError):  # as root, the server runs as rabbitmq: give it the files
            owner = pwd.getpwnam("rabbitmq")
            if os.geteuid() == 0:
                for path in [self.base, *self.base.rglob("*"), *Path(self.pki.key).parent.rglob("*")]:
                    os.chown(path, owner.pw_uid, owner.pw_gid)
                os.chown(Path(self.pki.key).parent, owner.pw_uid, owner.pw_gid)
