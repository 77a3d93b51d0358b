"""Broker URLs: the parsing every adapter's configuration shares, and `redact` for showing one.

Each adapter reads its options from its URL's query. What they have in common lives here, so
an unknown option, a value that is not a number or a URL of the wrong scheme reads the same
whatever the broker, and no message or log line shows a credential: every URL an adapter puts
in an error or a log goes through `redact` first.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import overload
from urllib.parse import SplitResult, parse_qsl, unquote, unquote_plus, urlsplit

from tidings.errors import ConfigurationError

SECRET_WORDS = ("pass", "secret", "token", "key", "sasl")
"""A query parameter whose name contains one of these (any case) has its value hidden by `redact`."""
HIDDEN = "***"

_PARTS = re.compile(
    r"(?P<head>[^:/?#]+://)?(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<query>\?[^#]*)?(?P<rest>#.*)?", re.S
)


def redact(url: str) -> str:
    """`url` with its password and the values of secret-looking query parameters replaced by `***`.

    Everything else is kept as written; a URL with nothing to hide comes back unchanged.
    """
    match = _PARTS.fullmatch(url)
    if match is None:  # pragma: no cover - the pattern matches any string
        return HIDDEN
    head, authority, path, query, rest = match.group("head", "authority", "path", "query", "rest")
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:{HIDDEN}@{hosts}"
    if query:
        query = "?" + "&".join(_hide_value(pair) for pair in query[1:].split("&"))
    return f"{head or ''}{authority}{path}{query or ''}{rest or ''}"


def _hide_value(pair: str) -> str:
    name, eq, value = pair.partition("=")
    if eq and value and is_secret(unquote_plus(name)):
        return f"{name}={HIDDEN}"
    return pair


def is_secret(name: str) -> bool:
    """Whether a query parameter called `name` holds a credential (see `SECRET_WORDS`)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def split(url: str, schemes: Collection[str], what: str, usage: str) -> SplitResult:
    """`urlsplit(url)`, refused with a `ConfigurationError` unless its scheme is one of `schemes`.

    `what` names the broker in messages ("SQLite broker", "Kafka"); `usage` shows a good URL.
    """
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ConfigurationError(f"cannot read the {what} URL {redact(url)!r}: {error}; use {usage}") from None
    if parts.scheme not in schemes:
        raise ConfigurationError(f"not a {what} URL: {redact(url)!r}; use {usage}")
    return parts


def query(parts: SplitResult) -> list[tuple[str, str]]:
    """The (name, value) pairs of the URL's query, in order, blank values included."""
    return parse_qsl(parts.query, keep_blank_values=True)


def credentials(netloc: str) -> tuple[str | None, str | None, str]:
    """(user, password, hosts) of a URL's authority, percent-decoded; None where absent.

    Works for a list of hosts (`user:pw@h1:9092,h2:9092`), which `urlsplit`'s `port` refuses.
    """
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, hosts
    user, colon, password = userinfo.partition(":")
    return unquote(user), unquote(password) if colon else None, hosts


def hosts(url: str, netloc: str, what: str, default_port: int) -> list[tuple[str, int]]:
    """The (host, port) pairs of an authority naming one host or several (`h1:p1,h2:p2,[::1]:p3`).

    A host without a port gets `default_port`; an empty entry or a port that is not a number is a
    `ConfigurationError` naming the URL (redacted).
    """
    _, _, listed = credentials(netloc)
    found: list[tuple[str, int]] = []
    for entry in listed.split(","):
        entry = entry.strip()
        if entry.startswith("["):  # [IPv6]:port
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = entry.partition(":")
        if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
            raise ConfigurationError(f"bad host {entry!r} in the {what} URL {redact(url)!r}; use host:port[,host:port]")
        found.append((unquote(host), int(port) if port else default_port))
    return found


def unknown(url: str, name: str, known: Collection[str], what: str) -> ConfigurationError:
    """The error for a query option the adapter does not know."""
    return ConfigurationError(
        f"unknown option {name!r} in the {what} URL {redact(url)!r}; known: {', '.join(sorted(known))}"
    )


@overload
def number(url: str, name: str, value: str, what: str, kind: type[int]) -> int: ...
@overload
def number(url: str, name: str, value: str, what: str, kind: type[float] = float) -> float: ...
def number(url: str, name: str, value: str, what: str, kind: type[float] | type[int] = float) -> float | int:
    """An option's value as a number of `kind`; a `ConfigurationError` naming the option if it is not one."""
    try:
        return kind(value)
    except ValueError:
        article = "an integer" if kind is int else "a number"
        shown = HIDDEN if is_secret(name) else repr(value)
        raise ConfigurationError(f"option {name}={shown} in the {what} URL {redact(url)!r} must be {article}") from None


def flag(url: str, name: str, value: str, what: str) -> bool:
    """An option's value as a boolean: `true`/`1` or `false`/`0`, any case."""
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ConfigurationError(f"option {name}={value!r} in the {what} URL {redact(url)!r} must be true or false")
    return lowered in ("true", "1")
