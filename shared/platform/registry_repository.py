"""Where registry rows live: model versions and their audit trail.

`PostgresRegistryRepository` holds the SQL; `InMemoryRegistryRepository` is its fake, with the
same rules (one active, one challenger and one shadow per kind and scope; activation as a
compare-and-swap; rollback walks back what activation replaced), so the lifecycle is tested
without a database. Each write is one transaction, serialised per (kind, scope) by an advisory lock.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.adapters.db import Database, Transaction, is_uuid
from shared.errors import Conflict, InvalidInput, NotFound

ANY = object()  # activate(): no expectation about the currently active version
_NIL = "00000000-0000-0000-0000-000000000000"
_SCOPE = f"COALESCE(tenant_id, '{_NIL}'::uuid)"
_SAME_SCOPE = f"kind = :kind AND {_SCOPE} = COALESCE(CAST(:tenant AS uuid), '{_NIL}'::uuid)"
_COLUMNS = (
    "version_id, kind, tenant_id, version, status, artifact_key, artifact_format,"
    " artifact_sha256, artifact_hmac, manifest, challenger_share, shadow, replaced_version_id,"
    " created_at, activated_at, retired_at"
)


# What a tenant sees of a global version's manifest: its quality and form, nothing of the data.
TENANT_VISIBLE_GLOBAL_MANIFEST = frozenset({"metrics", "promotion_metric", "basis", "feature_names", "features"})
# A global version's hold-out counts are every tenant's pooled rows: a tenant sees its rates only.
POOLED_COUNTS = frozenset({"rows", "positives"})


def global_manifest_for_tenant(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a tenant may see of a global version's manifest: its quality (rates, no counts) and its
    form, nothing of the pooled data it was trained on (row counts, distributions, windows)."""
    shown = {k: v for k, v in manifest.items() if k in TENANT_VISIBLE_GLOBAL_MANIFEST}
    if isinstance(shown.get("metrics"), dict):
        shown["metrics"] = {k: v for k, v in shown["metrics"].items() if k not in POOLED_COUNTS}
    return shown


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
    shadow: bool = False

    @property
    def label(self) -> str:
        """Stable human name: kind-v3 for global, kind-v3@tenant-prefix for a tenant model."""
        scope = "" if self.tenant_id is None else f"@{self.tenant_id[:8]}"
        return f"{self.kind}-v{self.version}{scope}"

    @property
    def scope(self) -> str:
        return "global" if self.tenant_id is None else "tenant"

    def public_view(self, for_tenant: bool = False) -> dict[str, Any]:
        """The version as the API and CLI show it. `for_tenant`: a global version's manifest shows a
        tenant its quality and form only, not what it was trained on (row counts, feature
        distributions, windows: every tenant's pooled data)."""
        manifest = self.manifest
        if for_tenant and self.tenant_id is None:
            manifest = global_manifest_for_tenant(manifest)
        return {
            "version_id": self.version_id,
            "label": self.label,
            "kind": self.kind,
            "scope": self.scope,
            "version": self.version,
            "status": self.status,
            "challenger_share": self.challenger_share,
            "shadow": self.shadow,
            "artifact_sha256": self.artifact_sha256,
            "manifest": manifest,
            "created_at": self.created_at.isoformat(),
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


@dataclass(frozen=True)
class NewVersion:
    kind: str
    tenant_id: str | None
    artifact_key: str
    artifact_format: str
    artifact_sha256: str
    artifact_hmac: str
    manifest: dict[str, Any]


class RegistryRepository(Protocol):
    def insert_candidate(self, new: NewVersion, *, actor: str) -> ModelVersion: ...
    def activate(self, version_id: str, *, actor: str, reason: str, expected_active_id: str | None | object) -> ModelVersion: ...
    def rollback(self, kind: str, tenant_id: str | None, *, actor: str, reason: str) -> ModelVersion: ...
    def set_challenger(self, version_id: str, share: float | None, *, actor: str) -> ModelVersion: ...
    def set_shadow(self, version_id: str, on: bool, *, actor: str) -> ModelVersion: ...
    def audit(self, *, actor: str, action: str, kind: str, tenant_id: str | None, version_id: str | None,
              detail: dict[str, Any]) -> None: ...
    def get(self, version_id: str) -> ModelVersion: ...
    def list_versions(self, *, kind: str | None, tenant_id: str | None, include_global: bool) -> list[ModelVersion]: ...
    def in_scope(self, kind: str, tenant_id: str | None) -> ScopeVersions: ...
    def active_kinds(self) -> list[str]: ...
    def audit_trail(self, version_id: str | None, limit: int) -> list[dict[str, Any]]: ...
    def last_audit_at(self, kind: str, tenant_id: str | None, actions: tuple[str, ...]) -> datetime | None: ...


@dataclass(frozen=True)
class ScopeVersions:
    """What one (kind, scope) has that serves: the active version, a challenger, a shadow."""

    active: ModelVersion | None
    challenger: ModelVersion | None
    shadow: ModelVersion | None


def _check_share(share: float | None) -> None:
    if share is not None and not 0 < share < 1:
        raise InvalidInput("challenger share must be between 0 and 1")


def _check_one_role(target: ModelVersion, role: str) -> None:
    """A candidate is a challenger or a shadow, not both: as both it would be logged twice for the
    requests it answers (once answering, once as its own shadow), which skews its live metrics."""
    other = "shadow" if role == "challenger" else "challenger"
    if target.shadow if role == "challenger" else target.challenger_share is not None:
        raise Conflict(f"{target.label} is already the {other}; stop that first "
                       f"(`mlstack models {other} {target.version_id} --stop`)")


# -- PostgreSQL ---------------------------------------------------------------------------------


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
        shadow=bool(row["shadow"]),
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


def _audit(tx: Transaction, *, actor: str, action: str, kind: str | None, tenant_id: str | None,
           version_id: str | None, detail: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO registry_audit (actor, action, kind, tenant_id, version_id, detail)"
        " VALUES (:actor, :action, :kind, CAST(:tenant AS uuid), CAST(:version AS uuid),"
        " CAST(:detail AS jsonb))",
        actor=actor, action=action, kind=kind, tenant=tenant_id, version=version_id,
        detail=json.dumps(detail, default=str),
    )


def _audit_version(tx: Transaction, actor: str, action: str, version: ModelVersion, detail: dict[str, Any]) -> None:
    _audit(tx, actor=actor, action=action, kind=version.kind, tenant_id=version.tenant_id,
           version_id=version.version_id, detail=detail)


class PostgresRegistryRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    def insert_candidate(self, new: NewVersion, *, actor: str) -> ModelVersion:
        with self._database.transaction() as tx:
            _lock_scope(tx, new.kind, new.tenant_id)
            number = tx.fetch_value(
                f"SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE {_SAME_SCOPE}",
                kind=new.kind, tenant=new.tenant_id,
            )
            row = tx.fetch_one(
                "INSERT INTO model_versions (kind, tenant_id, version, status, artifact_key,"
                " artifact_format, artifact_sha256, artifact_hmac, manifest)"
                " VALUES (:kind, CAST(:tenant AS uuid), :number, 'candidate', :key, :format,"
                " :digest, :hmac, CAST(:manifest AS jsonb))"
                f" RETURNING {_COLUMNS}",
                kind=new.kind, tenant=new.tenant_id, number=number, key=new.artifact_key,
                format=new.artifact_format, digest=new.artifact_sha256, hmac=new.artifact_hmac,
                manifest=json.dumps(new.manifest, sort_keys=True, default=str),
            )
            assert row is not None
            version = _row_to_version(row)
            _audit_version(tx, actor, "register", version, {"artifact_key": new.artifact_key})
        return version

    def activate(self, version_id: str, *, actor: str, reason: str, expected_active_id: str | None | object) -> ModelVersion:
        with self._database.transaction() as tx:
            target = self._get_for_update(tx, version_id)
            if target.status == "active":
                raise Conflict(f"{target.label} is already active")
            current = self._active_in_tx(tx, target.kind, target.tenant_id)
            if expected_active_id is not ANY and (current.version_id if current else None) != expected_active_id:
                raise Conflict(f"the active {target.kind} version changed meanwhile; not activating {target.label}")
            if current is not None:
                tx.execute(
                    "UPDATE model_versions SET status = 'retired', retired_at = now() WHERE version_id = CAST(:id AS uuid)",
                    id=current.version_id,
                )
            row = tx.fetch_one(
                "UPDATE model_versions SET status = 'active', activated_at = now(), retired_at = NULL,"
                " challenger_share = NULL, shadow = false, replaced_version_id = CAST(:previous AS uuid)"
                f" WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                id=target.version_id, previous=current.version_id if current else None,
            )
            assert row is not None
            activated = _row_to_version(row)
            _audit_version(tx, actor, "activate", activated,
                           {"replaced": current.version_id if current else None, "reason": reason})
        return activated

    def rollback(self, kind: str, tenant_id: str | None, *, actor: str, reason: str) -> ModelVersion:
        with self._database.transaction() as tx:
            _lock_scope(tx, kind, tenant_id)
            current = self._active_in_tx(tx, kind, tenant_id)
            if current is None:
                raise Conflict(f"no active {kind} model to roll back")
            if current.replaced_version_id is None:
                raise Conflict(f"{current.label} replaced nothing: there is nothing to roll back to")
            tx.execute(
                "UPDATE model_versions SET status = 'retired', retired_at = now() WHERE version_id = CAST(:id AS uuid)",
                id=current.version_id,
            )
            # The restored version keeps its own replaced_version_id, so rollbacks walk back in order.
            row = tx.fetch_one(
                "UPDATE model_versions SET status = 'active', activated_at = now(), retired_at = NULL,"
                f" challenger_share = NULL, shadow = false WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                id=current.replaced_version_id,
            )
            assert row is not None
            restored = _row_to_version(row)
            _audit_version(tx, actor, "rollback", restored, {"from": current.version_id, "reason": reason})
        return restored

    def set_challenger(self, version_id: str, share: float | None, *, actor: str) -> ModelVersion:
        _check_share(share)
        return self._set_serving_role(version_id, "challenger_share", share, "challenger", actor)

    def set_shadow(self, version_id: str, on: bool, *, actor: str) -> ModelVersion:
        return self._set_serving_role(version_id, "shadow", on, "shadow", actor)

    def _set_serving_role(self, version_id: str, column: str, value: Any, action: str, actor: str) -> ModelVersion:
        """A candidate's role beside the active version: challenger share or shadow (one per scope)."""
        off = "NULL" if column == "challenger_share" else "false"
        with self._database.transaction() as tx:
            target = self._get_for_update(tx, version_id)
            if value not in (None, False) and target.status != "candidate":
                raise Conflict(f"{target.label} is {target.status}; only a candidate can be a {action}")
            if value not in (None, False):
                _check_one_role(target, action)
            tx.execute(f"UPDATE model_versions SET {column} = {off} WHERE {_SAME_SCOPE}",
                       kind=target.kind, tenant=target.tenant_id)
            row = tx.fetch_one(
                f"UPDATE model_versions SET {column} = :value WHERE version_id = CAST(:id AS uuid) RETURNING {_COLUMNS}",
                value=value, id=version_id,
            )
            assert row is not None
            updated = _row_to_version(row)
            _audit_version(tx, actor, action, updated, {"share" if action == "challenger" else "on": value})
        return updated

    def audit(self, *, actor: str, action: str, kind: str, tenant_id: str | None, version_id: str | None,
              detail: dict[str, Any]) -> None:
        with self._database.transaction() as tx:
            _audit(tx, actor=actor, action=action, kind=kind, tenant_id=tenant_id, version_id=version_id, detail=detail)

    def get(self, version_id: str) -> ModelVersion:
        with self._database.transaction() as tx:
            return self._get(tx, version_id)

    def list_versions(self, *, kind: str | None, tenant_id: str | None, include_global: bool) -> list[ModelVersion]:
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
                tenant=tenant_id, kind=kind,
            )
        return [_row_to_version(row) for row in rows]

    def in_scope(self, kind: str, tenant_id: str | None) -> ScopeVersions:
        with self._database.transaction() as tx:
            rows = [_row_to_version(row) for row in tx.fetch_all(
                f"SELECT {_COLUMNS} FROM model_versions WHERE {_SAME_SCOPE}"
                " AND (status = 'active' OR challenger_share IS NOT NULL OR shadow)",
                kind=kind, tenant=tenant_id,
            )]
        return ScopeVersions(
            active=next((v for v in rows if v.status == "active"), None),
            challenger=next((v for v in rows if v.challenger_share is not None), None),
            shadow=next((v for v in rows if v.shadow), None),
        )

    def active_kinds(self) -> list[str]:
        with self._database.transaction() as tx:
            rows = tx.fetch_all(
                "SELECT DISTINCT kind FROM model_versions WHERE status = 'active' AND tenant_id IS NULL ORDER BY kind"
            )
        return [row["kind"] for row in rows]

    def audit_trail(self, version_id: str | None, limit: int) -> list[dict[str, Any]]:
        with self._database.transaction() as tx:
            return tx.fetch_all(
                "SELECT at, actor, action, kind, tenant_id, version_id, detail FROM registry_audit"
                " WHERE (CAST(:id AS uuid) IS NULL OR version_id = CAST(:id AS uuid))"
                " ORDER BY audit_id DESC LIMIT :limit",
                id=version_id, limit=limit,
            )

    def last_audit_at(self, kind: str, tenant_id: str | None, actions: tuple[str, ...]) -> datetime | None:
        with self._database.transaction() as tx:
            row = tx.fetch_one(
                "SELECT max(at) AS at FROM registry_audit WHERE kind = :kind"
                " AND tenant_id IS NOT DISTINCT FROM CAST(:tenant AS uuid) AND action = ANY(CAST(:actions AS text[]))",
                kind=kind, tenant=tenant_id, actions=list(actions),
            )
        return row["at"] if row else None

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
        row = tx.fetch_one(f"SELECT {_COLUMNS} FROM model_versions WHERE {_SAME_SCOPE} AND status = 'active'",
                           kind=kind, tenant=tenant_id)
        return _row_to_version(row) if row else None


# -- in memory ----------------------------------------------------------------------------------


class InMemoryRegistryRepository:
    """The fake: the same rules over a dict, one lock for all writes."""

    def __init__(self) -> None:
        self._versions: dict[str, ModelVersion] = {}
        self._audit: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _scope(self, kind: str, tenant_id: str | None) -> list[ModelVersion]:
        return [v for v in self._versions.values() if v.kind == kind and v.tenant_id == tenant_id]

    def _put(self, version: ModelVersion) -> ModelVersion:
        self._versions[version.version_id] = version
        return version

    def _record(self, actor: str, action: str, version: ModelVersion | None, detail: dict[str, Any],
                kind: str | None = None, tenant_id: str | None = None) -> None:
        self._audit.append({
            "at": datetime.now(UTC), "actor": actor, "action": action,
            "kind": version.kind if version else kind, "tenant_id": version.tenant_id if version else tenant_id,
            "version_id": version.version_id if version else None, "detail": copy.deepcopy(detail),
        })

    def insert_candidate(self, new: NewVersion, *, actor: str) -> ModelVersion:
        with self._lock:
            number = max((v.version for v in self._scope(new.kind, new.tenant_id)), default=0) + 1
            version = self._put(ModelVersion(
                version_id=str(uuid.uuid4()), kind=new.kind, tenant_id=new.tenant_id, version=number,
                status="candidate", artifact_key=new.artifact_key, artifact_format=new.artifact_format,
                artifact_sha256=new.artifact_sha256, artifact_hmac=new.artifact_hmac,
                manifest=copy.deepcopy(new.manifest), challenger_share=None, replaced_version_id=None,
                created_at=datetime.now(UTC), activated_at=None, retired_at=None,
            ))
            self._record(actor, "register", version, {"artifact_key": new.artifact_key})
            return version

    def _active(self, kind: str, tenant_id: str | None) -> ModelVersion | None:
        return next((v for v in self._scope(kind, tenant_id) if v.status == "active"), None)

    def activate(self, version_id: str, *, actor: str, reason: str, expected_active_id: str | None | object) -> ModelVersion:
        with self._lock:
            target = self.get(version_id)
            if target.status == "active":
                raise Conflict(f"{target.label} is already active")
            current = self._active(target.kind, target.tenant_id)
            if expected_active_id is not ANY and (current.version_id if current else None) != expected_active_id:
                raise Conflict(f"the active {target.kind} version changed meanwhile; not activating {target.label}")
            now = datetime.now(UTC)
            if current is not None:
                self._put(replace(current, status="retired", retired_at=now))
            activated = self._put(replace(
                target, status="active", activated_at=now, retired_at=None, challenger_share=None, shadow=False,
                replaced_version_id=current.version_id if current else None,
            ))
            self._record(actor, "activate", activated,
                         {"replaced": current.version_id if current else None, "reason": reason})
            return activated

    def rollback(self, kind: str, tenant_id: str | None, *, actor: str, reason: str) -> ModelVersion:
        with self._lock:
            current = self._active(kind, tenant_id)
            if current is None:
                raise Conflict(f"no active {kind} model to roll back")
            if current.replaced_version_id is None:
                raise Conflict(f"{current.label} replaced nothing: there is nothing to roll back to")
            now = datetime.now(UTC)
            self._put(replace(current, status="retired", retired_at=now))
            restored = self._put(replace(self._versions[current.replaced_version_id], status="active",
                                         activated_at=now, retired_at=None, challenger_share=None, shadow=False))
            self._record(actor, "rollback", restored, {"from": current.version_id, "reason": reason})
            return restored

    def set_challenger(self, version_id: str, share: float | None, *, actor: str) -> ModelVersion:
        _check_share(share)
        with self._lock:
            target = self.get(version_id)
            if share is not None and target.status != "candidate":
                raise Conflict(f"{target.label} is {target.status}; only a candidate can be a challenger")
            if share is not None:
                _check_one_role(target, "challenger")
            for other in self._scope(target.kind, target.tenant_id):
                self._put(replace(other, challenger_share=None))
            updated = self._put(replace(self._versions[version_id], challenger_share=share))
            self._record(actor, "challenger", updated, {"share": share})
            return updated

    def set_shadow(self, version_id: str, on: bool, *, actor: str) -> ModelVersion:
        with self._lock:
            target = self.get(version_id)
            if on and target.status != "candidate":
                raise Conflict(f"{target.label} is {target.status}; only a candidate can be a shadow")
            if on:
                _check_one_role(target, "shadow")
            for other in self._scope(target.kind, target.tenant_id):
                self._put(replace(other, shadow=False))
            updated = self._put(replace(self._versions[version_id], shadow=on))
            self._record(actor, "shadow", updated, {"on": on})
            return updated

    def audit(self, *, actor: str, action: str, kind: str, tenant_id: str | None, version_id: str | None,
              detail: dict[str, Any]) -> None:
        version = self._versions.get(version_id) if version_id else None
        self._record(actor, action, version, detail, kind=kind, tenant_id=tenant_id)

    def get(self, version_id: str) -> ModelVersion:
        version = self._versions.get(version_id)
        if version is None:
            raise NotFound(f"no model version {version_id}")
        return version

    def list_versions(self, *, kind: str | None, tenant_id: str | None, include_global: bool) -> list[ModelVersion]:
        chosen = [
            v for v in self._versions.values()
            if (kind is None or v.kind == kind)
            and (tenant_id is None or v.tenant_id == tenant_id or (include_global and v.tenant_id is None))
        ]
        return sorted(chosen, key=lambda v: (v.kind, v.tenant_id is not None, v.tenant_id or "", -v.version))

    def in_scope(self, kind: str, tenant_id: str | None) -> ScopeVersions:
        versions = self._scope(kind, tenant_id)
        return ScopeVersions(
            active=next((v for v in versions if v.status == "active"), None),
            challenger=next((v for v in versions if v.challenger_share is not None), None),
            shadow=next((v for v in versions if v.shadow), None),
        )

    def active_kinds(self) -> list[str]:
        return sorted({v.kind for v in self._versions.values() if v.status == "active" and v.tenant_id is None})

    def audit_trail(self, version_id: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [r for r in reversed(self._audit) if version_id is None or r["version_id"] == version_id]
        return rows[:limit]

    def last_audit_at(self, kind: str, tenant_id: str | None, actions: tuple[str, ...]) -> datetime | None:
        return max((r["at"] for r in self._audit
                    if r["kind"] == kind and r["tenant_id"] == tenant_id and r["action"] in actions), default=None)
