"""The model registry: versions of each model kind, global or per tenant, and which one serves.

A version is an artifact in the object store, a manifest, and a row holding the artifact's SHA-256
and HMAC. Activation and rollback are one transaction each, serialised per kind and scope by an
advisory lock; a partial unique index makes two active versions impossible.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.adapters.artifacts import KNOWN_FORMATS, deserialize
from shared.adapters.db import Database, Transaction, is_uuid
from shared.adapters.objectstore import ObjectStore, global_key, tenant_key
from shared.adapters.signing import ArtifactSigner
from shared.errors import ArtifactRejected, Conflict, InvalidInput, NotFound
from shared.logs import log_security_event

ANY = object()  # activate(): no expectation about the currently active version
_NIL = "00000000-0000-0000-0000-000000000000"
_SCOPE = f"COALESCE(tenant_id, '{_NIL}'::uuid)"
_COLUMNS = (
    "version_id, kind, tenant_id, version, status, artifact_key, artifact_format,"
    " artifact_sha256, artifact_hmac, manifest, challenger_share, replaced_version_id,"
    " created_at, activated_at, retired_at"
)


@dataclass(frozen=True)
class ModelVersion:
    version_id: str
    kind: str
    tenant_id: str | None
    version: int
    status: str
    artifact_key: str
    artifact_format: str
    artifact_sha256: str
    artifact_hmac: str
    manifest: dict[str, Any]
    challenger_share: float | None
    replaced_version_id: str | None
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None

    @property
    def label(self) -> str:
        """Stable human name: kind-v3 for global, kind-v3@tenant-prefix for a tenant model."""
        scope = "" if self.tenant_id is None else f"@{self.tenant_id[:8]}"
        return f"{self.kind}-v{self.version}{scope}"

    def public_view(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "label": self.label,
            "kind": self.kind,
            "scope": "global" if self.tenant_id is None else "tenant",
            "version": self.version,
            "status": self.status,
            "challenger_share": self.challenger_share,
            "artifact_sha256": self.artifact_sha256,
            "manifest": self.manifest,
            "created_at": self.created_at.isoformat(),
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


def _row_to_version(row: dict[str, Any]) -> ModelVersion:
    manifest = row["manifest"]
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    return ModelVersion(
        version_id=str(row["version_id"]),
        kind=row["kind"],
        tenant_id=str(row["tenant_id"]) if row["tenant_id"] else None,
        version=row["version"],
        status=row["status"],
        artifact_key=row["artifact_key"],
        artifact_format=row["artifact_format"],
        artifact_sha256=row["artifact_sha256"],
        artifact_hmac=row["artifact_hmac"],
        manifest=manifest,
        challenger_share=row["challenger_share"],
        replaced_version_id=str(row["replaced_version_id"]) if row["replaced_version_id"] else None,
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        retired_at=row["retired_at"],
    )


def _lock_scope(tx: Transaction, kind: str, tenant_id: str | None) -> None:
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(:scope, 7340102))",
        scope=f"registry/{kind}/{tenant_id or 'global'}",
    )


def _audit(
    tx: Transaction,
    actor: str,
    action: str,
    version: ModelVersion | None,
    detail: dict[str, Any] | None = None,
    *,
    kind: str | None = None,
    tenant_id: str | None = None,
) -> None:
    tx.execute(
        "INSERT INTO registry_audit (actor, action, kind, tenant_id, version_id, detail)"
        " VALUES (:actor, :action, :kind, CAST(:tenant AS uuid), CAST(:version AS uuid),"
        " CAST(:detail AS jsonb))",
        actor=actor,
        action=action,
        kind=version.kind if version else kind,
        tenant=(version.tenant_id if version else tenant_id),
        version=version.version_id if version else None,
        detail=json.dumps(detail or {}),
    )


class Registry:
    def __init__(self, database: Database, store: ObjectStore, signer: ArtifactSigner) -> None:
        self._database = database
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
        object_name = f"{uuid.uuid4().hex}.{artifact_format}"
        key = (
            tenant_key(tenant_id, "models", kind, object_name)
            if tenant_id
            else global_key("models", kind, object_name)
        )
        digest, signature = self._signer.sign(key, artifact)
        # The artifact is written first: a row never points at bytes that are not there. A crash
        # between the two leaves an unreferenced object, which is harmless.
        self._store.put(key, artifact)
        with self._database.transaction() as tx:
            _lock_scope(tx, kind, tenant_id)
            number = tx.fetch_value(
                f"SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions"
                f" WHERE kind = :kind AND {_SCOPE} = COALESCE(CAST(:tenant AS uuid), '{_NIL}'::uuid)",
                kind=kind,
                tenant=tenant_id,
            )
            row = tx.fetch_one(
                "INSERT INTO model_versions (kind, tenant_id, version, status, artifact_key,"
                " artifact_format, artifact_sha256, artifact_hmac, manifest)"
                " VALUES (:kind, CAST(:tenant AS uuid), :number, 'candidate', :key, :format,"
                " :digest, :hmac, CAST(:manifest AS jsonb))"
                f" RETURNING {_COLUMNS}",
                kind=kind,
                tenant=tenant_id,
                number=number,
                key=key,
                format=artifact_format,
                digest=digest,
                hmac=signature,
                manifest=json.dumps(manifest, sort_keys=True, default=str),
            )
            assert row is not None
            version = _row_to_version(row)
            _audit(tx, actor, "register", version, {"artifact_key": key})
        return version

    def activate(
        self, version_id: str, *, actor: str, reason: str = "", expected_active_id: str | None | object = ANY
    ) -> ModelVersion:
        """Make a version the active one of its kind and scope.

        With expected_active_id (a version id, or None for "nothing active"), the activation is a
        compare-and-swap: it is refused if the active version changed since the caller compared
        against it, so two retrains that judged against the same champion cannot both promote.
        """
        with self._database.transaction() as tx:
            target = self._get_for_update(tx, version_id)
            if target.status == "active":
                raise Conflict(f"{target.label} is already active")
            current = self._active_in_tx(tx, target.kind, target.tenant_id)
            if expected_active_id is not ANY and (current.version_id if current else None) != expected_active_id:
                raise Conflict(f"the active {target.kind} version changed meanwhile; not activating {target.label}")
            if current is not None:
                tx.execute(
                    "UPDATE model_versions SET status = 'retired', retired_at = now()"
                    " WHERE version_id = CAST(:id AS uuid)",
                    id=current.version_id,
                )
            row = tx.fetch_one(
                "UPDATE model_versions SET status = 'active', activated_at = now(),"
                " retired_at = NULL, challenger_share = NULL,"
                " replaced_version_id = CAST(:previous AS uuid)"
                f" WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                id=target.version_id,
                previous=current.version_id if current else None,
            )
            assert row is not None
            activated = _row_to_version(row)
            _audit(
                tx,
                actor,
                "activate",
                activated,
                {"replaced": current.version_id if current else None, "reason": reason},
            )
        return activated

    def rollback(self, kind: str, tenant_id: str | None, *, actor: str, reason: str = "") -> ModelVersion:
        """Re-activate the version the active one replaced; the active one is retired."""
        with self._database.transaction() as tx:
            _lock_scope(tx, kind, tenant_id)
            current = self._active_in_tx(tx, kind, tenant_id)
            if current is None:
                raise Conflict(f"no active {kind} model to roll back")
            if current.replaced_version_id is None:
                raise Conflict(f"{current.label} replaced nothing: there is nothing to roll back to")
            tx.execute(
                "UPDATE model_versions SET status = 'retired', retired_at = now()"
                " WHERE version_id = CAST(:id AS uuid)",
                id=current.version_id,
            )
            # The restored version keeps its own replaced_version_id, so rollbacks walk back in order.
            row = tx.fetch_one(
                "UPDATE model_versions SET status = 'active', activated_at = now(), retired_at = NULL,"
                f" challenger_share = NULL WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                id=current.replaced_version_id,
            )
            assert row is not None
            restored = _row_to_version(row)
            _audit(tx, actor, "rollback", restored, {"from": current.version_id, "reason": reason})
        return restored

    def set_challenger(self, version_id: str, share: float | None, *, actor: str) -> ModelVersion:
        """Let a candidate serve `share` of traffic beside the active version (None: stop)."""
        if share is not None and not 0 < share < 1:
            raise InvalidInput("challenger share must be between 0 and 1")
        with self._database.transaction() as tx:
            target = self._get_for_update(tx, version_id)
            if share is not None and target.status != "candidate":
                raise Conflict(f"{target.label} is {target.status}; only a candidate can be a challenger")
            tx.execute(
                "UPDATE model_versions SET challenger_share = NULL"
                f" WHERE kind = :kind AND {_SCOPE} = COALESCE(CAST(:tenant AS uuid), '{_NIL}'::uuid)",
                kind=target.kind,
                tenant=target.tenant_id,
            )
            row = tx.fetch_one(
                "UPDATE model_versions SET challenger_share = :share"
                f" WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                share=share,
                id=version_id,
            )
            assert row is not None
            updated = _row_to_version(row)
            _audit(tx, actor, "challenger", updated, {"share": share})
        return updated

    def record_decision(
        self, *, kind: str, tenant_id: str | None, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        """Audit a decision that changed nothing (e.g. a candidate that was not promoted)."""
        with self._database.transaction() as tx:
            _audit(tx, actor, action, None, detail, kind=kind, tenant_id=tenant_id)

    # -- reading -------------------------------------------------------------------------

    def get(self, version_id: str, *, visible_to_tenant: str | None = None) -> ModelVersion:
        """A version by id. With visible_to_tenant, another tenant's version is NotFound."""
        with self._database.transaction() as tx:
            version = self._get(tx, version_id)
        if visible_to_tenant is not None and version.tenant_id not in (None, visible_to_tenant):
            raise NotFound(f"no model version {version_id}")
        return version

    def list_versions(
        self, *, kind: str | None = None, tenant_id: str | None = None, include_global: bool = True
    ) -> list[ModelVersion]:
        scope = (
            "(tenant_id = CAST(:tenant AS uuid)" + (" OR tenant_id IS NULL)" if include_global else ")")
            if tenant_id
            else "TRUE"
        )
        with self._database.transaction() as tx:
            rows = tx.fetch_all(
                f"SELECT {_COLUMNS} FROM model_versions WHERE {scope}"
                " AND (CAST(:kind AS text) IS NULL OR kind = :kind)"
                " ORDER BY kind, tenant_id NULLS FIRST, version DESC",
                tenant=tenant_id,
                kind=kind,
            )
        return [_row_to_version(row) for row in rows]

    def active_version(self, kind: str, tenant_id: str | None) -> ModelVersion | None:
        """The tenant's own active version if it has one, else the global one."""
        with self._database.transaction() as tx:
            if tenant_id is not None:
                own = self._active_in_tx(tx, kind, tenant_id)
                if own is not None:
                    return own
            return self._active_in_tx(tx, kind, None)

    def challenger_for(self, kind: str, tenant_id: str | None) -> ModelVersion | None:
        with self._database.transaction() as tx:
            row = tx.fetch_one(
                f"SELECT {_COLUMNS} FROM model_versions WHERE kind = :kind"
                f" AND {_SCOPE} = COALESCE(CAST(:tenant AS uuid), '{_NIL}'::uuid)"
                " AND challenger_share IS NOT NULL",
                kind=kind,
                tenant=tenant_id,
            )
        return _row_to_version(row) if row else None

    def active_kinds(self) -> list[str]:
        """Model kinds with an active global version (health is public: no tenant detail)."""
        with self._database.transaction() as tx:
            rows = tx.fetch_all(
                "SELECT DISTINCT kind FROM model_versions WHERE status = 'active' AND tenant_id IS NULL ORDER BY kind"
            )
        return [row["kind"] for row in rows]

    def audit_trail(self, version_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._database.transaction() as tx:
            return tx.fetch_all(
                "SELECT at, actor, action, kind, tenant_id, version_id, detail FROM registry_audit"
                " WHERE (CAST(:id AS uuid) IS NULL OR version_id = CAST(:id AS uuid))"
                " ORDER BY audit_id DESC LIMIT :limit",
                id=version_id,
                limit=limit,
            )

    # -- loading -------------------------------------------------------------------------

    def load_verified(self, version: ModelVersion) -> Any:
        """Fetch the artifact, check digest and signature, and only then deserialise it."""
        data = self._store.get(version.artifact_key)
        try:
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
            with self._database.transaction() as tx:
                _audit(tx, "system", "artifact_rejected", version, {"reason": exc.message})
            raise
        return deserialize(version.artifact_format, data)

    # -- helpers -------------------------------------------------------------------------

    def _get(self, tx: Transaction, version_id: str) -> ModelVersion:
        row = (
            tx.fetch_one(f"SELECT {_COLUMNS} FROM model_versions WHERE version_id = CAST(:id AS uuid)", id=version_id)
            if is_uuid(version_id)
            else None
        )
        if row is None:
            raise NotFound(f"no model version {version_id}")
        return _row_to_version(row)

    def _get_for_update(self, tx: Transaction, version_id: str) -> ModelVersion:
        version = self._get(tx, version_id)
        _lock_scope(tx, version.kind, version.tenant_id)
        # Re-read under the lock: another activation may have changed its status meanwhile.
        return self._get(tx, version_id)

    def _active_in_tx(self, tx: Transaction, kind: str, tenant_id: str | None) -> ModelVersion | None:
        row = tx.fetch_one(
            f"SELECT {_COLUMNS} FROM model_versions WHERE kind = :kind AND status = 'active'"
            f" AND {_SCOPE} = COALESCE(CAST(:tenant AS uuid), '{_NIL}'::uuid)",
            kind=kind,
            tenant=tenant_id,
        )
        return _row_to_version(row) if row else None
