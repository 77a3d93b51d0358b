"""Signing envelopes at publish and verifying them on consume.

`Signer(key).sign(envelope)` adds the two extension attributes (`signaturekey`, `signature`);
it refuses an envelope whose `source` is not the key's, so a producer can only sign as itself.
`Verifier(ring).check(envelope)` raises `SignatureRefused`, whose `kind` names the rule broken,
for an event that is unsigned, signed with a key the ring does not hold, an expired key, a key of
another source, or whose signature does not match its attributes and data (tampered). Reasons
name the key id and the source, never the event's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, PermanentError
from tidings.security.canonical import KEY_ATTRIBUTE, SIGNATURE_ATTRIBUTE, signed_bytes
from tidings.security.keys import Key, KeyRing, b64decode, b64encode


class Refusal(StrEnum):
    """Why a signature was refused; the first word of the dead-letter reason."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown-key"
    EXPIRED_KEY = "expired-key"
    WRONG_SOURCE = "wrong-source"
    BAD_SIGNATURE = "bad-signature"


class SignatureRefused(PermanentError):
    """An event failed verification: dead-lettered at once with `kind: detail` as its reason."""

    def __init__(self, kind: Refusal, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 64 else f"{value[:64]!r}..."


def signs_for(key: Key, source: str) -> bool:
    """Whether `key` may sign, and vouch for, an event of `source`: its own `source` exactly, or,
    for a key that names a service, that service's default URI `urn:tidings:<service>` (so key
    rings written when `source` was the bare service name stay valid, for that service only)."""
    return source in (key.source, f"urn:tidings:{key.source}")


class Signer:
    """Signs the envelopes of one source with `key` (which must be able to sign)."""

    def __init__(self, key: Key) -> None:
        if not key.can_sign:
            raise ConfigurationError(f"key {key.id!r} has no private part: it cannot sign")
        self.key = key

    def sign(self, envelope: Envelope) -> Envelope:
        if not signs_for(self.key, envelope.source):
            raise ConfigurationError(
                f"key {self.key.id!r} signs for source {self.key.source!r}, not {envelope.source!r}"
            )
        if self.key.expired():
            raise ConfigurationError(f"key {self.key.id!r} expired at {self.key.expires}: rotate to a new key")
        extensions = {k: v for k, v in envelope.extensions.items() if k not in (KEY_ATTRIBUTE, SIGNATURE_ATTRIBUTE)}
        unsigned = envelope.with_changes(extensions=extensions)
        signature = b64encode(self.key.sign(signed_bytes(unsigned)))
        return unsigned.with_changes(
            extensions={**extensions, KEY_ATTRIBUTE: self.key.id, SIGNATURE_ATTRIBUTE: signature}
        )


class Verifier:
    """Accepts only envelopes signed by a valid key of `ring` for their own `source`."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def check(self, envelope: Envelope, now: datetime | None = None) -> Key:
        """The key that signed `envelope`; `SignatureRefused` if it must not be believed."""
        key_id = envelope.extensions.get(KEY_ATTRIBUTE)
        signature = envelope.extensions.get(SIGNATURE_ATTRIBUTE)
        if not key_id or not signature:
            raise SignatureRefused(
                Refusal.UNSIGNED, f"event from source {_shown(envelope.source)} carries no signature"
            )
        key = self.ring.get(key_id)
        if key is None:
            raise SignatureRefused(Refusal.UNKNOWN_KEY, f"key id {_shown(key_id)} is not in this service's key ring")
        if not signs_for(key, envelope.source):
            raise SignatureRefused(
                Refusal.WRONG_SOURCE,
                f"key {key.id!r} signs for source {key.source!r}, the event claims {_shown(envelope.source)}",
            )
        if key.expired(now or datetime.now(UTC)):
            raise SignatureRefused(Refusal.EXPIRED_KEY, f"key {key.id!r} expired at {key.expires}")
        try:
            raw = b64decode(signature)
        except ValueError:
            raw = b""
        if not key.verify(signed_bytes(envelope), raw):
            raise SignatureRefused(
                Refusal.BAD_SIGNATURE, f"signature by key {key.id!r} does not match the event (altered in transit?)"
            )
        return key


@dataclass(frozen=True, slots=True)
class Signing:
    """A service's signing set-up: `key` signs what it publishes, `ring` verifies what it consumes.

    Either may be None: a producer that signs without verifying, a consumer that verifies without
    publishing. `Signing.from_files(key_file, ring_file)` reads them from key files.
    """

    key: Key | None = None
    ring: KeyRing | None = None

    @property
    def signer(self) -> Signer | None:
        return Signer(self.key) if self.key is not None else None

    @property
    def verifier(self) -> Verifier | None:
        return Verifier(self.ring) if self.ring is not None else None

    @classmethod
    def from_files(
        cls, key_file: str | None = None, ring_file: str | None = None, *, key_id: str | None = None
    ) -> Signing:
        """The key `key_id` (default: the last one) of `key_file`, and the ring of `ring_file`."""
        from tidings.security.keys import load_keys

        key = None
        if key_file:
            keys = [k for k in load_keys(key_file) if k.can_sign and (key_id is None or k.id == key_id)]
            if not keys:
                wanted = f"signing key {key_id!r}" if key_id else "signing key"
                raise ConfigurationError(f"no {wanted} in {key_file!r} (or only its public half)")
            key = keys[-1]
        return cls(key, KeyRing(load_keys(ring_file)) if ring_file else None)
