"""The bytes a signature covers: one envelope's attributes and data in a canonical form.

    b"tidings-sig-v1\n" + JSON(attributes, sorted keys, no whitespace) + b"\n" + data

`attributes` are `Envelope.attributes()` (the form binary mode puts in headers, extensions
included) without the two signature attributes; `datacontenttype` is included, so its header
cannot be swapped either. JSON is self-delimiting, so no attribute can bleed into the data. The
data is signed as the bytes sent: Tidings publishes binary mode, where the body travels
untouched; a structured-mode event is verified over its data as `from_structured` re-encodes it.
"""

from __future__ import annotations

import json

from tidings.envelope import Envelope

KEY_ATTRIBUTE = "signaturekey"
"""Extension attribute holding the id of the key that signed the envelope."""
SIGNATURE_ATTRIBUTE = "signature"
"""Extension attribute holding the signature, unpadded base64url."""
_DOMAIN = b"tidings-sig-v1\n"


def signed_bytes(envelope: Envelope) -> bytes:
    """What a signature of `envelope` covers (its own signature attributes excluded)."""
    attributes = envelope.attributes()
    attributes.pop(KEY_ATTRIBUTE, None)
    attributes.pop(SIGNATURE_ATTRIBUTE, None)
    head = json.dumps(attributes, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return b"".join((_DOMAIN, head, b"\n", envelope.data))
