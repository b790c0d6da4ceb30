"""Staff-set operating points: where a tenant moved its review/block thresholds (else the serving
model's own, chosen on validation at training)."""

from __future__ import annotations

from typing import Any, Protocol

from shared.adapters.db import Transaction


class OperatingPoints(Protocol):
    def get(self, session: Any, tenant_id: str) -> dict[str, Any] | None: ...
    def set(self, session: Any, tenant_id: str, review: float, block: float, actor: str) -> dict[str, Any]: ...


class PostgresOperatingPoints:
    def get(self, session: Transaction, tenant_id: str) -> dict[str, Any] | None:
        return session.fetch_one(
            "SELECT review_threshold, block_threshold, set_by, set_at FROM fraud_operating_points"
            " WHERE tenant_id = CAST(:tenant AS uuid)", tenant=tenant_id)

    def set(self, session: Transaction, tenant_id: str, review: float, block: float, actor: str) -> dict[str, Any]:
        row = session.fetch_one(
            "INSERT INTO fraud_operating_points (tenant_id, review_threshold, block_threshold, set_by)"
            " VALUES (CAST(:tenant AS uuid), :review, :block, :actor)"
            " ON CONFLICT (tenant_id) DO UPDATE SET review_threshold = EXCLUDED.review_threshold,"
            " block_threshold = EXCLUDED.block_threshold, set_by = EXCLUDED.set_by, set_at = now()"
            " RETURNING review_threshold, block_threshold, set_by, set_at",
            tenant=tenant_id, review=review, block=block, actor=actor)
        assert row is not None
        return row


class InMemoryOperatingPoints:
    def __init__(self) -> None:
        self.points: dict[str, dict[str, Any]] = {}

    def get(self, session: Any, tenant_id: str) -> dict[str, Any] | None:
        return self.points.get(tenant_id)

    def set(self, session: Any, tenant_id: str, review: float, block: float, actor: str) -> dict[str, Any]:
        self.points[tenant_id] = {"review_threshold": review, "block_threshold": block, "set_by": actor}
        return self.points[tenant_id]
