"""The conflict use cases (predict, outcome tracking, retraining) on in-memory repositories: the
same code the API and the jobs run, without a database. tests/integration keeps the SQL path."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shared.adapters.objectstore import InMemoryObjectStore
from shared.adapters.signing import ArtifactSigner
from shared.conflict.features_repository import InMemoryConflictFeatures
from shared.conflict.kind import CONFLICT
from shared.conflict.outcomes_repository import InMemoryConflictOutcomes
from shared.conflict.prediction import ConflictPredictionRequest, answer_conflict, read_conflict_prediction
from shared.conflict.services import ConflictServices
from shared.errors import NotFound
from shared.platform.kinds import TrainingSet
from shared.platform.locks import InMemoryLocks
from shared.platform.outcomes import track_outcomes
from shared.platform.prediction_log import InMemoryPredictionLog
from shared.platform.registry import Registry
from shared.platform.registry_repository import InMemoryRegistryRepository
from shared.platform.retraining import retrain
from shared.platform.serving_cache import ServingModels
from shared.platform.transactions import InMemoryTransactions

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


class SyntheticHistory:
    """Training rows whose conflicts follow field overlap and staleness, as the real ones do."""

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        rng = np.random.default_rng(5)
        n = 1500
        rows = [{"concurrent_editors": float(rng.integers(0, 4)), "hours_since_last_sync": float(rng.exponential(20)),
                 "user_conflict_rate": float(rng.uniform(0.02, 0.3)), "entity_edit_frequency": float(rng.exponential(2)),
                 "field_overlap_score": float(rng.uniform()),
                 "other_edits_since_sync": float(rng.poisson(0.5))} for _ in range(n)]
        logit = np.array([-3 + 4 * r["field_overlap_score"] + 0.05 * r["hours_since_last_sync"] for r in rows])
        labels = rng.random(n) < 1 / (1 + np.exp(-logit))
        times = [start + (end - start) * i / n for i in range(n)]
        return TrainingSet(CONFLICT.design_matrix(rows), labels, times, start, end)


@pytest.fixture
def services() -> ConflictServices:
    registry = Registry(InMemoryRegistryRepository(), InMemoryObjectStore(), ArtifactSigner(secrets.token_bytes(32)))
    log = InMemoryPredictionLog("conflict")
    return ConflictServices(
        transactions=InMemoryTransactions(), features=InMemoryConflictFeatures(), log=log,
        outcomes=InMemoryConflictOutcomes(log), training=SyntheticHistory(), registry=registry,
        models=ServingModels(registry, refresh_seconds=0), locks=InMemoryLocks(),
    )


def ask(services: ConflictServices, user: str, entity: str, request_id: str, at: datetime = NOW) -> dict[str, Any]:
    request = ConflictPredictionRequest(domain="voice", user_id=user, entity_type="recording", entity_id=entity)
    return answer_conflict(services, "tenant-a", request, request_id, now=at)


def test_without_a_model_the_heuristic_answers_and_the_answer_is_logged(services: ConflictServices) -> None:
    services.features.features[("alice", "r1")] = {"field_overlap_score": 1.0, "concurrent_editors": 3}  # type: ignore[attr-defined]
    risky, calm = ask(services, "alice", "r1", "q1"), ask(services, "bob", "r2", "q2")
    assert risky["scope"] == calm["scope"] == "heuristic" and risky["degraded"] is True
    assert risky["probability"] > calm["probability"]
    logged = read_conflict_prediction(services, "tenant-a", risky["prediction_id"])
    assert logged["user_id"] == "alice" and logged["probability"] == pytest.approx(risky["probability"], abs=1e-6)
    with pytest.raises(NotFound):
        read_conflict_prediction(services, "tenant-b", risky["prediction_id"])


def test_outcomes_label_due_predictions_once_and_feed_live_metrics(services: ConflictServices) -> None:
    asked = NOW - timedelta(hours=30)
    conflicted, clean = ask(services, "alice", "r1", "q1", asked), ask(services, "bob", "r2", "q2", asked)
    recent = ask(services, "carol", "r3", "q3", NOW - timedelta(hours=2))
    services.outcomes.conflicts.append(("alice", "r1", asked + timedelta(hours=3)))  # type: ignore[attr-defined]
    tracked = track_outcomes(services.transactions, services.outcomes, services.log, NOW)
    assert tracked["labelled"] == 2
    outcomes = {p: read_conflict_prediction(services, "tenant-a", p)["outcome"]
                for p in (conflicted["prediction_id"], clean["prediction_id"], recent["prediction_id"])}
    assert list(outcomes.values()) == [True, False, None]
    assert {m["window_days"] for m in tracked["metrics"]} == {7, 30}
    assert track_outcomes(services.transactions, services.outcomes, services.log, NOW)["labelled"] == 0


def test_retrain_promotes_a_first_model_then_keeps_it_and_the_api_serves_it(services: ConflictServices) -> None:
    first = retrain(CONFLICT, services.training, services.registry, services.locks, now=NOW)
    assert first["promoted"] is True, first
    again = retrain(CONFLICT, services.training, services.registry, services.locks, now=NOW)
    assert again["promoted"] is False and ("5 %" in again["reason"] or "significant" in again["reason"])
    answer = ask(services, "alice", "r1", "q1")
    assert answer["scope"] == "global" and answer["model_version"] == "conflict-v1" and not answer["degraded"]
