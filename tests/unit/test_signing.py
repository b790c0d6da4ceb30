import pytest

from shared.adapters.signing import ArtifactSigner, signing_key_from_secret
from shared.errors import ArtifactRejected, ConfigurationError

KEY = bytes(range(32))


def test_intact_artifact_verifies() -> None:
    signer = ArtifactSigner(KEY)
    digest, signature = signer.sign("global/models/conflict/a.json", b"model-bytes")
    signer.verify("global/models/conflict/a.json", b"model-bytes", digest, signature)


def test_changed_bytes_are_rejected() -> None:
    signer = ArtifactSigner(KEY)
    digest, signature = signer.sign("k", b"model-bytes")
    with pytest.raises(ArtifactRejected, match="SHA-256"):
        signer.verify("k", b"model-bytez", digest, signature)


def test_signature_from_another_key_is_rejected() -> None:
    digest, signature = ArtifactSigner(b"x" * 32).sign("k", b"model-bytes")
    with pytest.raises(ArtifactRejected, match="signature"):
        ArtifactSigner(KEY).verify("k", b"model-bytes", digest, signature)


def test_artifact_moved_to_another_key_is_rejected() -> None:
    signer = ArtifactSigner(KEY)
    digest, signature = signer.sign("tenants/a/models/x.json", b"m")
    with pytest.raises(ArtifactRejected):
        signer.verify("tenants/b/models/x.json", b"m", digest, signature)


def test_short_key_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ArtifactSigner(b"short")


def test_secret_may_hold_hex_or_json() -> None:
    assert signing_key_from_secret(KEY.hex()) == KEY
    assert signing_key_from_secret('{"signing_key": "%s"}' % KEY.hex()) == KEY
