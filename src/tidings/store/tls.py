"""TLS options of a PostgreSQL URL, read the way libpq reads them.

    postgresql://user:pw@db.example:5432/orders?sslmode=verify-full&sslrootcert=/etc/tidings/ca.pem

SQLAlchemy hands every URL query option to asyncpg as a keyword argument, and asyncpg takes no
`sslrootcert` keyword; so the engine's connect hook removes these options and gives asyncpg an
`ssl.SSLContext` instead (the same choice libpq makes: `verify-ca` checks the chain,
`verify-full` the chain and the host name). Without a root certificate file the mode itself is
passed on, and asyncpg reads libpq's defaults (`~/.postgresql/root.crt`). The dedicated LISTEN
connection gets the options in its DSN, which asyncpg parses itself.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from tidings.errors import ConfigurationError

OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword")
MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def connect_argument(query: Mapping[str, Any]) -> ssl.SSLContext | str | None:
    """The `ssl` argument asyncpg should get for these URL options; None if they say nothing."""
    options = {name: _one(query[name]) for name in OPTIONS if name in query}
    if not options:
        return None
    mode = options.get("sslmode", "verify-full" if "sslrootcert" in options else "prefer")
    if mode not in MODES:
        raise ConfigurationError(f"sslmode={mode!r} in the database URL: use one of {', '.join(MODES)}")
    if mode not in ("verify-ca", "verify-full") or "sslrootcert" not in options:
        return mode
    try:
        context = ssl.create_default_context(cafile=options["sslrootcert"])
        if "sslcert" in options:
            context.load_cert_chain(options["sslcert"], options.get("sslkey"), options.get("sslpassword"))
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(f"cannot read the database TLS files: {error}") from None
    context.check_hostname = mode == "verify-full"
    return context


def _one(value: Any) -> str:
    return str(value[-1] if isinstance(value, tuple) else value)
