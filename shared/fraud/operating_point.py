"""Reading and moving a tenant's operating point (staff), with the trade-off table behind it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import FieldProblem, FieldRule, InvalidInput
from shared.fraud.kind import FRAUD
from shared.fraud.prediction import operating_point
from shared.fraud.services import FraudServices
from shared.platform.serving import choose_serving


class OperatingPointBody(BaseModel):
    """Either both thresholds, or a target recall read off the serving model's trade-off table."""

    model_config = ConfigDict(extra="forbid")
    review_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    block_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    target_recall: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_way(self) -> OperatingPointBody:
        given = {name for name in ("review_threshold", "block_threshold", "target_recall") if getattr(self, name) is not None}
        if given not in ({"review_threshold", "block_threshold"}, {"target_recall"}):
            raise FieldRule(_misplaced(given), "give review_threshold and block_threshold, or target_recall")
        if "target_recall" not in given and self.review_threshold > self.block_threshold:  # type: ignore[operator]
            raise FieldRule("review_threshold", "must not exceed block_threshold")
        return self


def _misplaced(given: set[str]) -> str:
    """The field to change: a threshold given beside target_recall, else the threshold missing
    beside the other, else target_recall (nothing given)."""
    if "target_recall" in given and len(given) > 1:
        return "review_threshold" if "review_threshold" in given else "block_threshold"
    if given == {"review_threshold"}:
        return "block_threshold"
    if given == {"block_threshold"}:
        return "review_threshold"
    return "target_recall"


def read_operating_point(services: FraudServices, tenant_id: str) -> dict[str, Any]:
    serving = choose_serving(FRAUD, services.models, tenant_id, "operating-point", allow_challenger=False,
                             with_shadow=False)
    with services.transactions.transaction() as tx:
        point = operating_point(services, tx, tenant_id, serving)
    manifest = serving.answering.version.manifest if serving.answering else {}
    chosen = manifest.get("operating_point", {})
    tradeoff = tradeoff_for_tenant(manifest) if serving.scope == "global" else chosen.get("tradeoff", [])
    return {**point, "model_version": serving.label, "scope": serving.scope,
            "trained_at_target_recall": chosen.get("target_recall"),
            "trained_block_threshold": chosen.get("block_threshold"), "tradeoff": tradeoff}


def tradeoff_for_tenant(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """A global model's trade-off table as a tenant sees it: precision, recall and false-positive
    rate at each threshold, not the alerts a day of every tenant's pooled events."""
    return [{k: v for k, v in row.items() if k != "alerts_per_day"}
            for row in manifest.get("operating_point", {}).get("tradeoff", [])]


def move_operating_point(services: FraudServices, tenant_id: str, body: OperatingPointBody, actor: str) -> dict[str, Any]:
    if body.target_recall is not None:
        current = read_operating_point(services, tenant_id)
        reaching = [row for row in current["tradeoff"] if (row["recall"] or 0) >= body.target_recall]
        if not reaching:
            raise InvalidInput("the serving model's trade-off table does not reach that recall",
                               [FieldProblem("target_recall", "no threshold reaches it (or no model serves)")])
        review = max(row["threshold"] for row in reaching)
        # Block stays where the model's precision put it (not where an earlier target pushed it),
        # never below review.
        trained_block = current["trained_block_threshold"]
        block = max(review, current["block_threshold"] if trained_block is None else trained_block)
    else:
        review, block = body.review_threshold, body.block_threshold  # type: ignore[assignment]
    with services.transactions.transaction() as tx:
        services.operating_points.set(tx, tenant_id, review, block, actor)
    return read_operating_point(services, tenant_id)
