"""Ed25519 signatures on commands from people and CI.

What is signed is the event's identity and content: `ce_id`, `ce_type`, `ce_subject` and the
exact value bytes. A tampered value, a re-typed event or a signature lifted onto another
event id all fail verification. Replays of the same signed message are stopped by the
receivers' dedupe on `ce_id`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schemas.envelope import Envelope


class SignatureError(ValueError):
    """A command that is unsigned, signed by an unknown key, or whose signature does not match."""


def _signed_bytes(envelope: Envelope, value: bytes) -> bytes:
    head = "\n".join((envelope.id, envelope.type, envelope.subject)).encode()
    return head + b"\n" + value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """A producer's private key and the name receivers know it by."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, name: str, text: str) -> SigningKey:
        """Load from the base64url raw 32-byte seed (how keys travel in environment variables)."""
        return cls(name, Ed25519PrivateKey.from_private_bytes(_unb64(text.strip())))

    def private_text(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return _b64(self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    def public_text(self) -> str:
        return _b64(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, envelope: Envelope, value: bytes) -> Envelope:
        signature = self.private.sign(_signed_bytes(envelope, value))
        return envelope.with_signature(self.name, _b64(signature))

    def __repr__(self) -> str:  # never print the private key
        return f"SigningKey(name={self.name!r})"


class TrustedKeys:
    """The public keys of known producers, by name."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for name, text in keys.items():
            try:
                self._keys[name] = Ed25519PublicKey.from_public_bytes(_unb64(text.strip()))
            except ValueError as exc:
                raise ValueError(f"trusted key {name!r} is not a base64url Ed25519 key") from exc

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, envelope: Envelope, value: bytes) -> str:
        """Return the signer's name, or raise SignatureError saying what is wrong."""
        if not envelope.signer or not envelope.signature:
            raise SignatureError(f"{envelope.type} {envelope.id} is unsigned")
        key = self._keys.get(envelope.signer)
        if key is None:
            raise SignatureError(f"{envelope.type} {envelope.id} signed by unknown key "
                                 f"{envelope.signer!r}")
        try:
            key.verify(_unb64(envelope.signature), _signed_bytes(envelope, value))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"{envelope.type} {envelope.id}: signature by {envelope.signer!r} does not match"
            ) from exc
        return envelope.signer
