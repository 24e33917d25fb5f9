"""A local keyring for development and the demo: one Ed25519 key per producer, and the file
of trusted public keys every guardian reads (GUARDIANS_TRUSTED_KEYS_FILE).

Production keys come from the deployment's secret store; this only makes the local stack
self-contained. Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from schemas.signing import SigningKey

PRODUCERS = ("ci", "ops", "migration", "deploy", "backup", "process", "incident")
"""CI submits changes, people (ops) decide reviews and request rollbacks, guardians sign the
commands they send to each other."""


def ensure_keyring(folder: Path, producers: tuple[str, ...] = PRODUCERS) -> Path:
    """Create missing keys under `folder`; return the trusted-keys file."""
    folder.mkdir(parents=True, exist_ok=True)
    public: dict[str, str] = {}
    for name in producers:
        path = folder / f"{name}.key"
        if path.exists():
            key = SigningKey.from_text(name, path.read_text())
        else:
            key = SigningKey.generate(name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key.private_text() + "\n")
        public[name] = key.public_text()
    trusted = folder / "trusted.yaml"
    trusted.write_text(yaml.safe_dump(public, sort_keys=True))
    return trusted


def signer_environment(folder: Path, name: str) -> dict[str, str]:
    """The environment that makes a process sign as `name` and trust the keyring."""
    trusted = ensure_keyring(folder)
    return {
        "GUARDIANS_SIGNER": name,
        "GUARDIANS_SIGNING_KEY": (folder / f"{name}.key").read_text().strip(),
        "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted),
    }
