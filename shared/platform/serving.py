"""Who answers a request of a (kind, tenant): the fallback chain, challenger share and shadow.

Chain: the tenant's own active version -> the global active version -> the kind's heuristic; a
version that cannot be fetched, verified or loaded is skipped (logged), never a 500. A challenger
answers its share of requests (split by a hash of the routing key, so a request always gets the
same variant). A shadow is scored on every request beside the answer and logged, never answering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.errors import MlstackError
from shared.logs import log_event
from shared.platform.kinds import ModelKind, ServingModel
from shared.platform.prediction_log import PredictionRecord
from shared.platform.registry import ModelVersion
from shared.platform.serving_cache import ServingModels


@dataclass(frozen=True)
class LoadedVersion:
    version: ModelVersion
    model: ServingModel
    variant: str  # champion | challenger | shadow


@dataclass(frozen=True)
class Serving:
    """What answers (a loaded version, or the heuristic when `answering` is None) and the shadow."""

    kind: ModelKind
    answering: LoadedVersion | None
    shadow: LoadedVersion | None = None

    @property
    def label(self) -> str:
        return self.answering.version.label if self.answering else self.kind.heuristic_label

    @property
    def version_id(self) -> str | None:
        return self.answering.version.version_id if self.answering else None

    @property
    def variant(self) -> str:
        return self.answering.variant if self.answering else "heuristic"

    @property
    def scope(self) -> str:
        return self.answering.version.scope if self.answering else "heuristic"

    @property
    def degraded(self) -> bool:
        return self.answering is None

    def probabilities(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        if self.answering is None:
            return np.array([self.kind.heuristic(row) for row in rows], dtype=np.float64)
        return self.answering.model.predict_proba(self.kind.design_matrix(rows))

    def probability(self, features: Mapping[str, float]) -> float:
        return float(self.probabilities([features])[0])

    def shadow_probability(self, features: Mapping[str, float]) -> float | None:
        if self.shadow is None:
            return None
        return float(self.shadow.model.predict_proba(self.kind.design_matrix([features]))[0])

    def records(
        self, *, tenant_id: str, request_id: str, subject: Mapping[str, Any], features: Mapping[str, float],
        probability: float, predicted_at: datetime, risk_level: str | None = None,
    ) -> list[PredictionRecord]:
        """The log rows of one answer: the answer itself, then the shadow's score if there is one.
        `risk_level` is the answer's when the loop decides it (a tenant's thresholds); else the kind's."""
        records = [PredictionRecord(
            tenant_id=tenant_id, request_id=request_id, subject=subject, features=features,
            probability=probability, risk_level=risk_level or self.kind.risk_level(probability),
            model_version_id=self.version_id,
            model_label=self.label, variant=self.variant, scope=self.scope, predicted_at=predicted_at,
        )]
        shadow_probability = self.shadow_probability(features)
        if self.shadow is not None and shadow_probability is not None:
            records.append(PredictionRecord(
                tenant_id=tenant_id, request_id=request_id, subject=subject, features=features,
                probability=shadow_probability, risk_level=self.kind.risk_level(shadow_probability),
                model_version_id=self.shadow.version.version_id, model_label=self.shadow.version.label,
                variant="shadow", scope=self.shadow.version.scope, predicted_at=predicted_at,
            ))
        return records


def in_challenger_share(routing_key: str, share: float) -> bool:
    """Deterministic split: the same routing key always gets the same variant."""
    bucket = int.from_bytes(hashlib.sha256(routing_key.encode()).digest()[:4], "big") / 2**32
    return bucket < share


def _load(kind: ModelKind, models: ServingModels, version: ModelVersion, variant: str) -> LoadedVersion | None:
    try:
        model = models.load(version, kind.load, artifact_format=kind.artifact_format)
    except MlstackError as exc:
        # Refused, unreachable or unusable: the caller tries the next in the chain.
        log_event(f"{kind.name}.model_unavailable", version_id=version.version_id, reason=exc.message)
        return None
    return LoadedVersion(version, model, variant)


def choose_serving(
    kind: ModelKind, models: ServingModels, tenant_id: str, routing_key: str, *,
    allow_challenger: bool = True, with_shadow: bool = True,
) -> Serving:
    """Batch scoring passes allow_challenger=False: a challenger's share is a share of live traffic."""
    choice = models.choice(kind.name, tenant_id)
    chain: list[tuple[ModelVersion, str]] = []
    challenger = choice.challenger
    if (allow_challenger and challenger is not None and challenger.challenger_share
            and in_challenger_share(routing_key, challenger.challenger_share)):
        chain.append((challenger, "challenger"))
    chain.extend((champion, "champion") for champion in choice.champions)
    answering = None
    for version, variant in chain:
        answering = _load(kind, models, version, variant)
        if answering is not None:
            break
    shadow = None
    if with_shadow and choice.shadow is not None:
        shadow = _load(kind, models, choice.shadow, "shadow")
    return Serving(kind, answering, shadow)
