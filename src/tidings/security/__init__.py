"""Signed events and redaction (docs/security.md; docs/decisions/0021-security.md).

`Signing(key=..., ring=...)` given to a `Service` signs every envelope it publishes and makes its
consumer dead-letter every event that is not signed by a valid key of its own `source`.
"""

from tidings.security.identities import Identity
from tidings.security.keys import Key, KeyRing, load_keys, write_keys
from tidings.security.signing import Refusal, SignatureRefused, Signer, Signing, Verifier

__all__ = [
    "Identity",
    "Key",
    "KeyRing",
    "Refusal",
    "SignatureRefused",
    "Signer",
    "Signing",
    "Verifier",
    "load_keys",
    "write_keys",
]
