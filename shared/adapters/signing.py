"""Artifact integrity: SHA-256 digest plus an HMAC-SHA256 made with the model-signing key.

Both are recorded in the registry when an artifact is registered and checked before its bytes
are deserialised. The HMAC covers the object key as well, so the bytes cannot be moved to another
key; loading also checks that the key is its version's place (scope, kind and format:
shared/platform/registry.py), so a signed row cannot be copied into another version either.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from shared.errors import ArtifactRejected, ConfigurationError

_DOMAIN = b"mlstack-artifact-v1"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ConfigurationError("the model-signing key must be at least 32 bytes")
        self._key = key

    def signature(self, artifact_key: str, digest_hex: str) -> str:
        message = b"\n".join((_DOMAIN, artifact_key.encode(), digest_hex.encode()))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, artifact_key: str, data: bytes) -> tuple[str, str]:
        digest = sha256_hex(data)
        return digest, self.signature(artifact_key, digest)

    def verify(self, artifact_key: str, data: bytes, expected_digest: str, expected_hmac: str) -> None:
        digest = sha256_hex(data)
        if not hmac.compare_digest(digest, expected_digest):
            raise ArtifactRejected(f"artifact {artifact_key!r}: SHA-256 does not match the registry")
        if not hmac.compare_digest(self.signature(artifact_key, digest), expected_hmac):
            raise ArtifactRejected(f"artifact {artifact_key!r}: signature does not match the registry")


def signing_key_from_secret(secret_string: str) -> bytes:
    """A secret holds the key as hex, or as JSON {"signing_key": "<hex>"}."""
    text = secret_string.strip()
    if text.startswith("{"):
        text = str(json.loads(text).get("signing_key", ""))
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError("the signing-key secret is not hex") from None
