"""A private Kafka 4 broker (KRaft, one node) for the security tests: SCRAM-SHA-512 on every
client listener, ACLs enforced by the StandardAuthorizer, and one listener over TLS with the
test's certificate (PEM key store). The administrator's SCRAM credential is written when the
storage is formatted; per-service users are created by provisioning, through the admin API.

    SASL_PLAINTEXT 127.0.0.1:19192   SASL_SSL localhost:19193   CONTROLLER 127.0.0.1:19194

Jars and Java as `scripts/kafka.sh` installs them; data and log under `base`."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.integration.security.pki import Pki

LIBS = Path(os.environ.get("TIDINGS_STATE_DIR", "/var/lib/tidings")) / "kafka" / "libs"
LOG4J = Path(__file__).resolve().parents[3] / "scripts" / "kafka" / "log4j2.xml"
ADMIN = ("admin", "kafka-Admin-Secret-9c1")
START_WITHIN = 120.0


@dataclass
class PrivateKafka:
    base: Path
    pki: Pki
    port: int = 19192
    tls_port: int = 19193
    controller_port: int = 19194
    process: subprocess.Popen[bytes] | None = None

    def url(
        self,
        user: str,
        password: str,
        prefix: str,
        *,
        tls: bool = False,
        host: str = "localhost",
        ca: Path | None = None,
    ) -> str:
        if tls:
            return (
                f"kafka://{user}:{password}@{host}:{self.tls_port}?prefix={prefix}&security_protocol=SASL_SSL"
                f"&sasl_mechanism=SCRAM-SHA-512&ssl_cafile={ca or self.pki.ca}&declare_timeout=0"
            )
        return (
            f"kafka://{user}:{password}@127.0.0.1:{self.port}?prefix={prefix}"
            "&security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512&declare_timeout=5"
        )

    def admin_url(self, prefix: str) -> str:
        return self.url(*ADMIN, prefix)

    def start(self) -> float:
        began = time.monotonic()
        self.stop()
        for port in (self.port, self.tls_port, self.controller_port):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} is taken: the private Kafka broker needs it")
        shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "data").mkdir(parents=True)
        props = self.base / "server.properties"
        props.write_text(self._properties())
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        user, password = ADMIN
        self._java(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster,
            "-c",
            str(props),
            "--add-scram",
            f"SCRAM-SHA-512=[name={user},password={password}]",
            wait=True,
        )
        with (self.base / "kafka.log").open("ab") as log:
            self.process = subprocess.Popen(
                self._command("kafka.Kafka", str(props), heap="-Xmx512m"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        while not self._serving():
            if self.process.poll() is not None:
                raise RuntimeError(f"the private Kafka broker exited (log: {self.base / 'kafka.log'})")
            if time.monotonic() - began > START_WITHIN:
                raise TimeoutError(f"the private Kafka broker did not serve within {START_WITHIN}s")
            time.sleep(0.3)
        return time.monotonic() - began

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _serving(self) -> bool:
        """The broker answers once the SASL listener accepts and the admin can list topics."""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
        from confluent_kafka.admin import AdminClient

        user, password = ADMIN
        admin = AdminClient(
            {
                "bootstrap.servers": f"127.0.0.1:{self.port}",
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": user,
                "sasl.password": password,
            }
        )
        try:
            admin.list_topics(timeout=3)
        except Exception:
            return False
        return True

    def _properties(self) -> str:
        user, password = ADMIN
        keystore = self.base / "keystore.pem"
        keystore.write_bytes(Path(self.pki.key).read_bytes() + Path(self.pki.chain).read_bytes())
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.tls_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://localhost:{self.tls_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas} "
                f'username="{user}" password="{password}";',
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas};",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={keystore}",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{user};User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={self.base / 'data'}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "default.replication.factor=1",
                "min.insync.replicas=1",
                "group.initial.rebalance.delay.ms=0",
                "group.coordinator.append.linger.ms=0",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                "num.network.threads=2",
                "num.io.threads=2",
                "",
            ]
        )

    def _command(self, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java,
            heap,
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={self.base}",
            "-cp",
            f"{LIBS}/*",
            main,
            *args,
        ]

    def _java(self, main: str, *args: str, wait: bool) -> None:
        result = subprocess.run(self._command(main, *args), capture_output=True, text=True, timeout=120, cwd="/")
        if result.returncode != 0:
            raise RuntimeError(f"{main} exited {result.returncode}: {(result.stdout + result.stderr)[-800:]}")
