"""Signing and verification as pure logic: each rule a verifier enforces, and keys that never show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.security import Key, KeyRing, Refusal, SignatureRefused, Signer, Verifier, load_keys, write_keys
from tidings.security.canonical import KEY_ATTRIBUTE, SIGNATURE_ATTRIBUTE, signed_bytes
from tidings.security.keys import b64encode


class Shipped(Event, type="test.security.shipped", version=1):
    order_id: str


def _envelope(source: str = "orders") -> Envelope:
    return Envelope.wrap(Shipped(order_id="o-1"), source=source)


@pytest.fixture(params=["hmac-sha256", "ed25519"])
def key(request: pytest.FixtureRequest) -> Key:
    return Key.generate("orders-1", "orders", request.param)


def _refusal(verifier: Verifier, envelope: Envelope) -> Refusal:
    with pytest.raises(SignatureRefused) as refused:
        verifier.check(envelope)
    return refused.value.kind


def test_a_signed_envelope_verifies_with_the_public_part_only(key: Key) -> None:
    signed = Signer(key).sign(_envelope())
    assert signed.extensions[KEY_ATTRIBUTE] == "orders-1"
    assert Verifier(KeyRing([key.public_only()])).check(signed).id == "orders-1"


def test_every_attribute_and_the_data_are_covered(key: Key) -> None:
    signed = Signer(key).sign(_envelope())
    verifier = Verifier(KeyRing([key]))
    for changed in (
        signed.with_changes(data=b'{"order_id":"o-2"}'),
        signed.with_changes(type="test.security.refunded"),
        signed.with_changes(subject="o-2"),
        signed.with_changes(datacontenttype="application/cloudevents+json"),
        signed.with_changes(extensions={**signed.extensions, "tenant": "other"}),
    ):
        assert _refusal(verifier, changed) is Refusal.BAD_SIGNATURE


def test_unsigned_unknown_expired_and_foreign_keys_are_refused(key: Key) -> None:
    ring = KeyRing([key])
    assert _refusal(Verifier(ring), _envelope()) is Refusal.UNSIGNED
    stranger = Key.generate("orders-0", "orders", key.algorithm)
    assert _refusal(Verifier(ring), Signer(stranger).sign(_envelope())) is Refusal.UNKNOWN_KEY
    expired = Key(key.id, key.source, key.algorithm, secret=key.secret, expires=datetime.now(UTC) - timedelta(1))
    assert _refusal(Verifier(KeyRing([expired])), Signer(key).sign(_envelope())) is Refusal.EXPIRED_KEY
    # a payments key signing an event that claims to come from orders: the bytes are right, the source is not
    payments = Key.generate("payments-1", "payments", key.algorithm)
    forged = _envelope("orders")
    signature = payments.sign(signed_bytes(forged))
    forged = forged.with_changes(extensions={KEY_ATTRIBUTE: "payments-1", SIGNATURE_ATTRIBUTE: b64encode(signature)})
    assert _refusal(Verifier(KeyRing([key, payments])), forged) is Refusal.WRONG_SOURCE


def test_a_producer_cannot_sign_as_another_source(key: Key) -> None:
    with pytest.raises(ConfigurationError, match="signs for source 'orders', not 'payments'"):
        Signer(key).sign(_envelope("payments"))


def test_the_ring_not_the_message_chooses_the_algorithm() -> None:
    """An Ed25519 public key used as an HMAC secret (the classic confusion) gets nowhere."""
    ed = Key.generate("orders-1", "orders", "ed25519")
    assert ed.public is not None
    as_hmac = Key("orders-1", "orders", "hmac-sha256", secret=ed.public)
    assert _refusal(Verifier(KeyRing([ed.public_only()])), Signer(as_hmac).sign(_envelope())) is Refusal.BAD_SIGNATURE


def test_reasons_never_quote_the_data(key: Key) -> None:
    envelope = Signer(key).sign(_envelope()).with_changes(data=b'{"order_id":"secret-card-4111"}')
    with pytest.raises(SignatureRefused) as refused:
        Verifier(KeyRing([key])).check(envelope)
    assert "4111" not in str(refused.value)
    assert str(refused.value).startswith("bad-signature: ")


def test_key_files_round_trip_and_reprs_hide_material(tmp_path: Path, key: Key) -> None:
    path = tmp_path / "keys.json"
    write_keys(path, [key], private=True)
    assert path.stat().st_mode & 0o777 == 0o600
    [loaded] = load_keys(path)
    assert loaded == key
    assert key.secret is not None
    assert key.secret.hex() not in repr(key)
    assert "secret=" not in repr(key)
    public = tmp_path / "public.json"
    write_keys(public, [key], private=False)
    [shared] = load_keys(public)
    assert shared.can_sign is (key.algorithm == "hmac-sha256")  # an HMAC key has no public half


def test_a_bad_key_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('[{"id": "k", "source": "orders", "algorithm": "rsa"}]')
    with pytest.raises(ConfigurationError, match="algorithm must be one of"):
        load_keys(path)
