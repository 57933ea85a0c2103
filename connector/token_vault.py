"""Encrypted storage of the delegated-mode msal token caches in the state store.

Each CRM user's serialized ``msal.SerializableTokenCache`` (refresh and access tokens) is
sealed with AES-256-GCM before it reaches the database. The key is derived with HKDF-SHA256
from ``state.token_cache_key``; the login is bound as associated data, so a row copied onto
another login does not decrypt (a user cannot be made to send with somebody else's sign-in).
The database only ever holds ``version || nonce || ciphertext``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.state.store import StateStore

_VERSION = b"\x01"
_NONCE = 12


class VaultError(Exception):
    """A stored token cache cannot be decrypted (wrong key, or the row was tampered with)."""


def _derive(secret: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"bpmsoft-invite-connector",
        info=b"msal token cache v1",
    ).derive(secret.encode("utf-8"))


class TokenVault:
    def __init__(
        self,
        store: StateStore,
        secret: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self._aead = AESGCM(_derive(secret))
        self.clock = clock

    @staticmethod
    def _aad(login: str) -> bytes:
        return b"login:" + login.lower().encode("utf-8")

    def seal(self, login: str, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad(login))
        return _VERSION + nonce + sealed

    def open(self, login: str, blob: bytes) -> str:
        if not blob.startswith(_VERSION) or len(blob) < 1 + _NONCE + 16:
            raise VaultError("unknown token cache format")
        nonce, sealed = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, sealed, self._aad(login)).decode("utf-8")
        except InvalidTag:
            raise VaultError("the token cache does not decrypt with this key") from None

    def load(self, login: str) -> str | None:
        """The serialized token cache of ``login``, or None when it never signed in."""
        blob = self.store.get_token_cache(login)
        return None if blob is None else self.open(login, blob)

    def save(self, login: str, serialized: str) -> bytes:
        """Seal and store the serialized cache; return the stored bytes."""
        blob = self.seal(login, serialized)
        self.store.put_token_cache(login, blob, self.clock())
        return blob

    def has(self, login: str) -> bool:
        return self.store.get_token_cache(login) is not None

    def forget(self, login: str) -> bool:
        return self.store.delete_token_cache(login)

    def logins(self) -> list[str]:
        return self.store.token_logins()
