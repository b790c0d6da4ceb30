"""The model registry: versions of each model kind, global or per tenant, and which one serves.

A version is an artifact in the object store, a manifest, and a row holding the artifact's SHA-256
and HMAC. The rows live behind a `RegistryRepository` (PostgreSQL, or the in-memory fake); this
service adds what ties them to the bytes: signing on register, verifying before anything is
deserialised, and the security audit when verification fails.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.adapters.artifacts import KNOWN_FORMATS, deserialize
from shared.adapters.objectstore import ObjectStore, global_key, tenant_key
from shared.adapters.signing import ArtifactSigner
from shared.errors import ArtifactRejected, InvalidInput, NotFound
from shared.logs import log_security_event
from shared.platform.registry_repository import (
    ANY,
    ModelVersion,
    NewVersion,
    RegistryRepository,
    ScopeVersions,
)

__all__ = ["ANY", "ModelVersion", "Registry", "ScopeVersions"]


class Registry:
    def __init__(self, repository: RegistryRepository, store: ObjectStore, signer: ArtifactSigner) -> None:
        self._repository = repository
        self._store = store
        self._signer = signer

    # -- writing -------------------------------------------------------------------------

    def register(
        self,
        *,
        kind: str,
        tenant_id: str | None,
        artifact: bytes,
        artifact_format: str,
        manifest: dict[str, Any],
        actor: str,
    ) -> ModelVersion:
        """Store the artifact, then record it as a candidate. Returns the new version."""
        if artifact_format not in KNOWN_FORMATS:
            raise InvalidInput(f"unknown artifact format {artifact_format!r}")
        key = artifact_folder(kind, tenant_id) + f"{uuid.uuid4().hex}.{artifact_format}"
        digest, signature = self._signer.sign(key, artifact)
        # The artifact is written first: a row never points at bytes that are not there. A crash
        # between the two leaves an unreferenced object, which is harmless.
        self._store.put(key, artifact)
        return self._repository.insert_candidate(
            NewVersion(kind, tenant_id, key, artifact_format, digest, signature, manifest), actor=actor
        )

    def activate(
        self, version_id: str, *, actor: str, reason: str = "", expected_active_id: str | None | object = ANY
    ) -> ModelVersion:
        """Make a version the active one of its kind and scope.

        With expected_active_id (a version id, or None for "nothing active"), the activation is a
        compare-and-swap: it is refused if the active version changed since the caller compared
        against it, so two retrains that judged against the same champion cannot both promote.
        """
        return self._repository.activate(version_id, actor=actor, reason=reason, expected_active_id=expected_active_id)

    def rollback(self, kind: str, tenant_id: str | None, *, actor: str, reason: str = "") -> ModelVersion:
        """Re-activate the version the active one replaced; the active one is retired."""
        return self._repository.rollback(kind, tenant_id, actor=actor, reason=reason)

    def set_challenger(self, version_id: str, share: float | None, *, actor: str) -> ModelVersion:
        """Let a candidate serve `share` of traffic beside the active version (None: stop)."""
        return self._repository.set_challenger(version_id, share, actor=actor)

    def set_shadow(self, version_id: str, on: bool, *, actor: str) -> ModelVersion:
        """Score a candidate on every request beside the active version, logged, never answering."""
        return self._repository.set_shadow(version_id, on, actor=actor)

    def record_decision(
        self, *, kind: str, tenant_id: str | None, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        """Audit a decision that changed nothing (e.g. a candidate that was not promoted)."""
        self._repository.audit(actor=actor, action=action, kind=kind, tenant_id=tenant_id, version_id=None,
                               detail=detail)

    # -- reading -------------------------------------------------------------------------

    def get(self, version_id: str, *, visible_to_tenant: str | None = None) -> ModelVersion:
        """A version by id. With visible_to_tenant, another tenant's version is NotFound."""
        version = self._repository.get(version_id)
        if visible_to_tenant is not None and version.tenant_id not in (None, visible_to_tenant):
            raise NotFound(f"no model version {version_id}")
        return version

    def list_versions(
        self, *, kind: str | None = None, tenant_id: str | None = None, include_global: bool = True
    ) -> list[ModelVersion]:
        return self._repository.list_versions(kind=kind, tenant_id=tenant_id, include_global=include_global)

    def in_scope(self, kind: str, tenant_id: str | None) -> ScopeVersions:
        """Exactly this scope's active version, challenger and shadow (no fallback)."""
        return self._repository.in_scope(kind, tenant_id)

    def active_version(self, kind: str, tenant_id: str | None) -> ModelVersion | None:
        """The tenant's own active version if it has one, else the global one."""
        if tenant_id is not None:
            own = self._repository.in_scope(kind, tenant_id).active
            if own is not None:
                return own
        return self._repository.in_scope(kind, None).active

    def challenger_for(self, kind: str, tenant_id: str | None) -> ModelVersion | None:
        return self._repository.in_scope(kind, tenant_id).challenger

    def active_kinds(self) -> list[str]:
        """Model kinds with an active global version (health is public: no tenant detail)."""
        return self._repository.active_kinds()

    def audit_trail(self, version_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._repository.audit_trail(version_id, limit)

    def last_recorded_at(self, kind: str, tenant_id: str | None, actions: tuple[str, ...]) -> datetime | None:
        """When one of these actions was last audited for exactly this scope."""
        return self._repository.last_audit_at(kind, tenant_id, actions)

    # -- loading -------------------------------------------------------------------------

    def load_verified_bytes(self, version: ModelVersion) -> bytes:
        """Fetch the artifact and check its place, digest and signature; only verified bytes leave
        here. The place (the version's scope, kind and format in its key) binds a validly signed
        artifact to its version: another tenant's or kind's copied into this row is refused."""
        try:
            _check_place(version)
            data = self._store.get(version.artifact_key)
            self._signer.verify(version.artifact_key, data, version.artifact_sha256, version.artifact_hmac)
        except ArtifactRejected as exc:
            log_security_event(
                "artifact_rejected",
                version_id=version.version_id,
                kind=version.kind,
                tenant_id=version.tenant_id,
                artifact_key=version.artifact_key,
                reason=exc.message,
            )
            self._repository.audit(actor="system", action="artifact_rejected", kind=version.kind,
                                   tenant_id=version.tenant_id, version_id=version.version_id,
                                   detail={"reason": exc.message})
            raise
        return data

    def load_verified(self, version: ModelVersion) -> Any:
        """Verified, then deserialised by its format (json -> dict; ubjson -> bytes; joblib)."""
        return deserialize(version.artifact_format, self.load_verified_bytes(version))


def artifact_folder(kind: str, tenant_id: str | None) -> str:
    """Where a scope's artifacts of a kind live: register writes there, loading checks it."""
    return (tenant_key(tenant_id, "models", kind) if tenant_id else global_key("models", kind)) + "/"


def _check_place(version: ModelVersion) -> None:
    folder = artifact_folder(version.kind, version.tenant_id)
    name = version.artifact_key.removeprefix(folder)
    if name == version.artifact_key or "/" in name or not name.endswith(f".{version.artifact_format}"):
        raise ArtifactRejected(f"artifact {version.artifact_key} is not in the place of a {version.kind} version"
                               " of this scope")
