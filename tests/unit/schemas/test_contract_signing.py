"""Signed commands: only an untouched command signed by a known producer key is accepted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.envelope import Envelope
from schemas.events import DeployRollbackRequested
from schemas.signing import SignatureError, SigningKey, TrustedKeys

CI = SigningKey.generate("ci")
TRUSTED = TrustedKeys({"ci": CI.public_text()})


def _command() -> tuple[Envelope, bytes]:
    event = DeployRollbackRequested(
        change_id="shop-7", service="shop", requested_by="alice", reason="error spike"
    )
    envelope = Envelope(
        type=event.ce_type(), source="cli", subject="shop", correlation_id="shop-7"
    )
    return envelope, event.model_dump_json().encode()


def test_signed_command_verifies_and_names_its_signer() -> None:
    envelope, value = _command()
    assert TRUSTED.verify(CI.sign(envelope, value), value) == "ci"


def test_signature_survives_the_trip_through_kafka_headers() -> None:
    envelope, value = _command()
    received = Envelope.from_headers(CI.sign(envelope, value).to_headers())
    assert TRUSTED.verify(received, value) == "ci"


def test_key_loaded_from_its_text_form_signs_the_same() -> None:
    envelope, value = _command()
    reloaded = SigningKey.from_text("ci", CI.private_text())
    assert TRUSTED.verify(reloaded.sign(envelope, value), value) == "ci"


def test_tampered_value_fails_verification() -> None:
    envelope, value = _command()
    signed = CI.sign(envelope, value)
    with pytest.raises(SignatureError, match="does not match"):
        TRUSTED.verify(signed, value.replace(b"error spike", b"just because"))


def test_command_signed_by_an_unknown_key_is_refused() -> None:
    envelope, value = _command()
    stranger = SigningKey.generate("mallory")
    with pytest.raises(SignatureError, match="unknown key 'mallory'"):
        TRUSTED.verify(stranger.sign(envelope, value), value)


def test_key_claiming_a_known_name_is_refused() -> None:
    envelope, value = _command()
    impostor = SigningKey.generate("ci")
    with pytest.raises(SignatureError, match="does not match"):
        TRUSTED.verify(impostor.sign(envelope, value), value)


def test_unsigned_command_is_refused() -> None:
    envelope, value = _command()
    with pytest.raises(SignatureError, match="unsigned"):
        TRUSTED.verify(envelope, value)


def test_signature_moved_to_another_event_id_fails() -> None:
    envelope, value = _command()
    signed = CI.sign(envelope, value)
    other = replace(envelope, id="another-event").with_signature(
        signed.signer or "", signed.signature or ""
    )
    with pytest.raises(SignatureError, match="does not match"):
        TRUSTED.verify(other, value)


def test_signature_moved_to_another_event_type_fails() -> None:
    envelope, value = _command()
    signed = CI.sign(envelope, value)
    retyped = replace(signed, type="guardians.service.restart.requested.v1")
    with pytest.raises(SignatureError, match="does not match"):
        TRUSTED.verify(retyped, value)


def test_trusted_key_that_is_not_an_ed25519_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="trusted key 'ops'"):
        TrustedKeys({"ops": "not-a-key"})
