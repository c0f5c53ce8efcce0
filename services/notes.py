"""Signing keys and signed notes (C2SP signed-note, Ed25519), the signer's side.

A key has a name (no spaces, no '+'), and an id: the first 4 bytes of
SHA-256(name || 0x0A || 0x01 || public key). The private key is kept in the form Go's
`golang.org/x/mod/sumdb/note` writes, `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`; the
verifier key, which is what auditors get, is `name+hexid+base64(0x01 || public key)`. A
note is its text (ending in a newline), a blank line, and one line per signature:
`— name base64(key id || Ed25519 signature of the text)`. Checking notes is
`revledger_verify`'s, written apart from this.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.errors import LedgerError

ED25519 = b"\x01"
_PRIVATE = "PRIVATE+KEY+"


@dataclass(frozen=True)
class SigningKey:
    name: str
    key: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def verifier(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(ED25519 + self.public)}"

    def private_text(self) -> str:
        seed = self.key.private_bytes_raw()
        return f"{_PRIVATE}{self.name}+{self.key_id.hex()}+{_b64(ED25519 + seed)}"

    def sign(self, text: str) -> str:
        """The signed note of `text` (which must end in a newline)."""
        if not text.endswith("\n"):
            raise ValueError("a note's text ends in a newline")
        signature = self.key.sign(text.encode())
        return f"{text}\n\u2014 {self.name} {_b64(self.key_id + signature)}\n"


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_key(name: str) -> SigningKey:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise LedgerError(f"a key name has no spaces and no '+': {name!r}")
    return SigningKey(name, Ed25519PrivateKey.generate())


def read_key(text: str) -> SigningKey:
    """A private key as `keygen` writes it; one line naming what is wrong otherwise."""
    parts = text.strip().removeprefix(_PRIVATE).split("+", 2)  # base64 may hold '+'

    if not text.strip().startswith(_PRIVATE) or len(parts) != 3:
        raise LedgerError("not a revledger signing key (PRIVATE+KEY+name+id+key): "
                          "use the .key file `revledger keygen` wrote")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise LedgerError("the signing key is not base64") from None
    if len(raw) != 33 or raw[:1] != ED25519:
        raise LedgerError("the signing key is not an Ed25519 key")
    key = SigningKey(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if key.key_id.hex() != hex_id.lower():
        raise LedgerError("the signing key's id does not match its name and key")
    return key
