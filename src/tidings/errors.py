"""The error hierarchy. The class of an error decides how the runtime routes the message.

Everything Tidings raises derives from `TidingsError`. A `PermanentError` (and so every
`MalformedMessage`) sends the delivery to the dead-letter store at once; any other exception
raised by a handler is treated as transient and retried with backoff.
"""

from __future__ import annotations

from enum import StrEnum


class TidingsError(Exception):
    """Base class of every error Tidings raises."""


class PermanentError(TidingsError):
    """Retrying cannot help: the delivery is dead-lettered at once with this error as reason."""


class ConfigurationError(TidingsError):
    """A URL, option or registration is invalid; raised at start, never while consuming."""


class NestedUnitOfWork(PermanentError):
    """A handler opened its own service's unit of work (`service.transaction()` or
    `service.publish()`): that work would not commit or roll back with the handler's, and on
    SQLite it would wait forever for the connection the handler holds. Use `ctx.publish`."""


class TransportError(TidingsError):
    """The broker could not be reached or refused an operation; nothing was reported as done."""


class PublishError(TransportError):
    """The broker did not confirm every envelope of a `publish` call; the caller must retry."""


class EnvelopeRefused(PublishError):
    """The broker refused one envelope for good (too large, say): publishing it again cannot succeed.

    `envelope_id` names it, so a caller publishing a batch (the outbox relay) can set that one
    envelope aside and publish the others; envelopes before it in the batch may have been
    accepted, envelopes after it were not.
    """

    def __init__(self, envelope_id: str, reason: str) -> None:
        super().__init__(f"the broker refused envelope {envelope_id}: {reason}")
        self.envelope_id = envelope_id
        self.reason = reason


class Malformation(StrEnum):
    """What exactly is wrong with a message that could not be decoded."""

    NOT_JSON = "not-json"
    MISSING_ATTRIBUTE = "missing-attribute"
    INVALID_ATTRIBUTE = "invalid-attribute"
    UNKNOWN_TYPE = "unknown-type"
    SCHEMA_MISMATCH = "schema-mismatch"
    TOO_LARGE = "too-large"


class MalformedMessage(PermanentError):
    """A message could not be turned into an event; `kind` names the problem, the text explains it."""

    def __init__(self, kind: Malformation, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
