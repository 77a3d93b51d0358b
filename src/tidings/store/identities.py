"""A PostgreSQL role per service, owning only its own database.

For each identity of a plan (`tidings.security.identities`): a `LOGIN` role named after its user
(no superuser, no createdb, no createrole), with its password; the database `<prefix><service>`
owned by that role; `CONNECT` on it revoked from `PUBLIC` and granted to the role. Another
service's role is then refused at connection time ("permission denied for database"), and the
role cannot touch any other database's tables. Idempotent: a re-run sets the passwords again and
changes nothing else. Needs an administrator's URL (a superuser, or a role with CREATEROLE and
CREATEDB), used once, at provisioning.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tidings.errors import ConfigurationError
from tidings.security.identities import Identity
from tidings.store.database import create_engine

_FORMAT = text("SELECT format(CAST(:template AS text), CAST(:a AS text), CAST(:b AS text))")


def database_name(identity: Identity, prefix: str) -> str:
    return f"{prefix}{identity.service}"


async def apply(admin_url: str, identities: Sequence[Identity], *, prefix: str = "") -> None:
    """Create or update each identity's role and database on the server of `admin_url`."""
    engine = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:

            async def run(template: str, a: str, b: str = "") -> None:
                try:
                    statement = await connection.scalar(_FORMAT, {"template": template, "a": a, "b": b})
                    await connection.execute(text(str(statement)))
                except DBAPIError as error:  # its text would quote the statement, password and all
                    what = template.partition(" %")[0]
                    raise ConfigurationError(f"provisioning {a!r}: {what} failed: {error.orig}") from None

            for identity in identities:
                database = database_name(identity, prefix)
                role_exists = await connection.scalar(
                    text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": identity.user}
                )
                verb = "ALTER" if role_exists else "CREATE"
                await run(
                    f"{verb} ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L",
                    identity.user,
                    identity.password,
                )
                if not await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}):
                    await run("CREATE DATABASE %I OWNER %I", database, identity.user)
                else:
                    await run("ALTER DATABASE %I OWNER TO %I", database, identity.user)
                await run("REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC", database)
                await run("GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I", database, identity.user)
    finally:
        await engine.dispose()
