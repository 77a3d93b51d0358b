"""A private PostgreSQL 15 server for the security tests: TLS only (the test's PKI), password
logins, on 127.0.0.1:5440, its data under `base`; run as the `postgres` system user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.integration.security.pki import Pki

BIN = Path("/usr/lib/postgresql/15/bin")
ADMIN_PASSWORD = "pg-Admin-Secret-7f3"


@dataclass
class PrivatePostgres:
    base: Path
    pki: Pki
    port: int = 5440

    @property
    def data(self) -> Path:
        return self.base / "data"

    def admin_url(self, host: str = "localhost") -> str:
        return (
            f"postgresql://postgres:{ADMIN_PASSWORD}@{host}:{self.port}/postgres"
            f"?sslmode=verify-full&sslrootcert={self.pki.ca}"
        )

    def start(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        for name in ("server.pem", "server.key"):
            shutil.copy(Path(self.pki.cert if name == "server.pem" else self.pki.key), self.base / name)
        (self.base / "pw").write_text(ADMIN_PASSWORD)
        owner = pwd.getpwnam("postgres")
        for path in [self.base, *self.base.iterdir()]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        (self.base / "server.key").chmod(0o600)
        self._as_postgres(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--pwfile",
            str(self.base / "pw"),
            "-A",
            "scram-sha-256",
            "--no-sync",
        )
        (self.data / "pg_hba.conf").write_text(
            "local all postgres scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.base}'\n"
                f"ssl = on\nssl_cert_file = '{self.base / 'server.pem'}'\nssl_key_file = '{self.base / 'server.key'}'\n"
                "fsync = off\nsynchronous_commit = off\nmax_connections = 60\nshared_buffers = 32MB\n"
            )
        self._as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def _as_postgres(self, *command: str, check: bool = True) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *command], cwd="/", capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{command[0]} exited {result.returncode}: {result.stderr[-800:]}")
