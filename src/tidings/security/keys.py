"""Signing keys and key rings: which key ids exist, whose `source` each signs for, until when.

A key is HMAC-SHA256 (one shared secret, for a deployment whose services trust each other's
secret store) or Ed25519 (a private key per producer; consumers hold only public keys). The
algorithm belongs to the key, never to the message, so a message cannot choose how it is checked.

Keys are written as JSON, one object per key (a key file holds a list)::

    {"id": "orders-2026-12", "source": "orders", "algorithm": "ed25519",
     "private": "<base64url>", "public": "<base64url>", "expires": "2027-03-01T00:00:00+00:00"}

`private` (Ed25519) or `secret` (HMAC) is needed to sign; a ring that only verifies Ed25519
events needs `public` alone. `repr` never shows key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tidings.errors import ConfigurationError

Algorithm = Literal["hmac-sha256", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("hmac-sha256", "ed25519")


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its id, the `source` it signs for, its algorithm and material, its expiry."""

    id: str
    source: str
    algorithm: Algorithm
    secret: bytes | None = field(default=None, repr=False)
    """HMAC: the shared secret. Ed25519: the 32-byte private key (seed), if this side signs."""
    public: bytes | None = field(default=None, repr=False)
    """Ed25519 only: the 32-byte public key."""
    expires: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.source:
            raise ConfigurationError("a signing key needs an id and the source it signs for")
        if self.algorithm not in ALGORITHMS:
            raise ConfigurationError(f"key {self.id!r}: algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.algorithm == "hmac-sha256" and (self.secret is None or len(self.secret) < 16):
            raise ConfigurationError(f"key {self.id!r}: an HMAC key needs a secret of at least 16 bytes")
        if self.algorithm == "ed25519" and self.public is None:
            if self.secret is None:
                raise ConfigurationError(f"key {self.id!r}: an Ed25519 key needs its public or private key")
            object.__setattr__(self, "public", _ed25519_public(self.secret))
        if self.expires is not None and self.expires.tzinfo is None:
            raise ConfigurationError(f"key {self.id!r}: expires must have a time zone")

    @property
    def can_sign(self) -> bool:
        return self.secret is not None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(UTC)) >= self.expires

    def sign(self, message: bytes) -> bytes:
        if self.secret is None:
            raise ConfigurationError(f"key {self.id!r} has no private part: it can verify, not sign")
        if self.algorithm == "hmac-sha256":
            return hmac.new(self.secret, message, hashlib.sha256).digest()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.secret).sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm == "hmac-sha256":
            assert self.secret is not None
            return hmac.compare_digest(hmac.new(self.secret, message, hashlib.sha256).digest(), signature)
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        assert self.public is not None
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_only(self) -> Key:
        """This key as a consumer holds it: Ed25519 without the private part (HMAC: unchanged)."""
        if self.algorithm == "hmac-sha256":
            return self
        return Key(self.id, self.source, self.algorithm, public=self.public, expires=self.expires)

    def to_json(self, *, private: bool) -> dict[str, Any]:
        """The key as a JSON object; `private=False` leaves out what only the signer may hold."""
        document: dict[str, Any] = {"id": self.id, "source": self.source, "algorithm": self.algorithm}
        if self.public is not None:
            document["public"] = b64encode(self.public)
        if self.secret is not None and (private or self.algorithm == "hmac-sha256"):
            document["secret" if self.algorithm == "hmac-sha256" else "private"] = b64encode(self.secret)
        if self.expires is not None:
            document["expires"] = self.expires.isoformat()
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Key:
        try:
            secret = document.get("secret") or document.get("private")
            public = document.get("public")
            expires = document.get("expires")
            return cls(
                str(document["id"]),
                str(document["source"]),
                document["algorithm"],
                secret=b64decode(secret) if secret else None,
                public=b64decode(public) if public else None,
                expires=datetime.fromisoformat(expires) if expires else None,
            )
        except (KeyError, ValueError, TypeError) as error:
            name = document.get("id", "?") if isinstance(document, Mapping) else "?"
            raise ConfigurationError(f"signing key {name!r} is not valid: {type(error).__name__} {error}") from None

    @classmethod
    def generate(cls, key_id: str, source: str, algorithm: Algorithm, *, expires: datetime | None = None) -> Key:
        """A new random key (32 bytes of secret, or an Ed25519 key pair)."""
        return cls(key_id, source, algorithm, secret=secrets.token_bytes(32), expires=expires)


def _ed25519_public(private: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class KeyRing:
    """The keys a consumer accepts, by id; several keys of one source may be valid at once (rotation)."""

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self._keys: dict[str, Key] = {}
        for key in keys:
            if key.id in self._keys:
                raise ConfigurationError(f"two keys with the id {key.id!r} in one key ring")
            self._keys[key.id] = key

    def get(self, key_id: str) -> Key | None:
        return self._keys.get(key_id)

    def __iter__(self) -> Any:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({sorted(self._keys)})"


def load_keys(path: str | Path) -> list[Key]:
    """The keys in a JSON file (a list of key objects, or one object)."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigurationError(f"cannot read the key file {str(path)!r}: {error.strerror}") from None
    except ValueError:
        raise ConfigurationError(f"the key file {str(path)!r} is not JSON") from None
    items = document if isinstance(document, list) else [document]
    return [Key.from_json(item) for item in items]


def write_keys(path: str | Path, keys: Iterable[Key], *, private: bool) -> None:
    """Write `keys` as JSON, readable by the owner only when it holds secrets."""
    target = Path(path)
    target.write_text(json.dumps([key.to_json(private=private) for key in keys], indent=2) + "\n")
    target.chmod(0o600)
