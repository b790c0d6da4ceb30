"""Tenants and their API keys.

A key is 32 random bytes shown once; only its SHA-256 is stored (a fast hash is right here: the
key is random and long, so there is nothing to brute-force). Each key has one tenant and one role.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.adapters.db import Database, Transaction, is_uuid
from shared.errors import FieldProblem, InvalidInput, NotFound

# operator: platform-wide monitoring (infrastructure metrics, every incident); its key sits on a
# platform tenant whose data it does not use.
ROLES = ("client", "staff", "service", "operator")
KEY_PREFIX = "mlk_"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MAX_NAME = 200


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class IssuedKey:
    """Returned once at creation: `secret` is never stored or shown again."""

    key_id: str
    tenant_id: str
    role: str
    secret: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: always derived from the key, never from the request body."""

    tenant_id: str
    role: str
    key_id: str


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _tenant(row: dict[str, Any]) -> Tenant:
    return Tenant(str(row["tenant_id"]), row["slug"], row["name"], row["created_at"])


def _insert_key(tx: Transaction, tenant_id: str, role: str, label: str) -> IssuedKey:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = tx.fetch_value(
        "INSERT INTO api_keys (tenant_id, role, key_hash, key_prefix, label)"
        " VALUES (CAST(:tenant AS uuid), :role, :hash, :prefix, :label) RETURNING key_id",
        tenant=tenant_id, role=role, hash=hash_key(secret), prefix=secret[:12], label=label,
    )
    return IssuedKey(str(key_id), tenant_id, role, secret)


class TenantDirectory:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create_tenant(self, slug: str, name: str) -> Tenant:
        return self.create_tenant_with_keys(slug, name, ())[0]

    def find_tenant(self, slug_or_id: str) -> Tenant:
        with self._database.transaction() as tx:
            row = tx.fetch_one(
                "SELECT * FROM tenants WHERE slug = :v OR tenant_id::text = :v", v=slug_or_id
            )
        if row is None:
            raise NotFound(f"no tenant {slug_or_id!r}")
        return _tenant(row)

    def list_tenants(self) -> list[Tenant]:
        with self._database.transaction() as tx:
            return [_tenant(r) for r in tx.fetch_all("SELECT * FROM tenants ORDER BY slug")]

    def create_key(self, tenant_id: str, role: str, label: str = "") -> IssuedKey:
        with self._database.transaction() as tx:
            return _insert_key(tx, tenant_id, role, label)

    def create_tenant_with_keys(self, slug: str, name: str, roles: tuple[str, ...]) -> tuple[Tenant, list[IssuedKey]]:
        """A tenant and its first keys in one transaction: never a tenant nobody can call as."""
        if not _SLUG.match(slug):
            raise InvalidInput("slug must be 2-63 lowercase letters, digits or '-'")
        if not 1 <= len(name) <= MAX_NAME or "\x00" in name:  # the column's check (migration 0001); text holds no NUL
            raise InvalidInput(f"a tenant's name is 1 to {MAX_NAME} characters, without NUL",
                               [FieldProblem("name", f"{len(name)} characters")])
        with self._database.transaction() as tx:
            row = tx.fetch_one("INSERT INTO tenants (slug, name) VALUES (:slug, :name) RETURNING *", slug=slug, name=name)
            assert row is not None
            tenant = _tenant(row)
            keys = [_insert_key(tx, tenant.tenant_id, role, f"{slug} {role}") for role in roles]
        return tenant, keys

    def revoke_key(self, key_id: str) -> None:
        if not is_uuid(key_id):
            raise NotFound(f"no active key {key_id}")
        with self._database.transaction() as tx:
            changed = tx.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = CAST(:id AS uuid) AND revoked_at IS NULL",
                id=key_id,
            )
        if changed == 0:
            raise NotFound(f"no active key {key_id}")

    def list_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        with self._database.transaction() as tx:
            return tx.fetch_all(
                "SELECT key_id, role, key_prefix, label, created_at, revoked_at FROM api_keys"
                " WHERE tenant_id = CAST(:tenant AS uuid) ORDER BY created_at",
                tenant=tenant_id,
            )

    def authenticate(self, presented: str) -> Principal | None:
        """The principal behind a presented key, or None for an unknown or revoked key."""
        if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
            return None
        with self._database.transaction() as tx:
            row = tx.fetch_one(
                "SELECT key_id, tenant_id, role FROM api_keys"
                " WHERE key_hash = :hash AND revoked_at IS NULL",
                hash=hash_key(presented),
            )
        if row is None:
            return None
        return Principal(str(row["tenant_id"]), row["role"], str(row["key_id"]))
