"""The one-statement live answer: the models' SQL forms give numpy's probabilities, every answer
is logged as answered (shadow too), and a statement that fails answers nothing and logs nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shared.conflict.answers_repository import probability_sql
from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import store_sync_events
from shared.conflict.features import FEATURE_NAMES
from shared.conflict.fitting import choose_knots, fit_basis
from shared.conflict.model import BASES, LinearConflictModel, heuristic_probability
from shared.conflict.prediction import ConflictPredictionRequest, predict_conflict
from shared.context import AppContext

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def feature_rows(n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    design = np.column_stack([
        rng.integers(0, 4, n), rng.exponential(60, n).clip(0, 720), rng.uniform(0.01, 0.4, n),
        rng.exponential(1.5, n), rng.choice([0.0, 0.5, 1.0], n), rng.poisson(0.8, n),
    ]).astype(np.float64)
    design[:5] = 0.0  # nothing at all: every log1p, indicator and hinge at its floor
    return design


def sql_probabilities(context: AppContext, expression: str, design: np.ndarray) -> np.ndarray:
    arrays = ", ".join(f"CAST(:c{k} AS float8[])" for k in range(len(FEATURE_NAMES)))
    with context.database.transaction() as tx:
        rows = tx.fetch_all(
            f"SELECT {expression} AS p FROM unnest({arrays}) WITH ORDINALITY AS f({', '.join(FEATURE_NAMES)}, n)"
            " ORDER BY n", **{f"c{k}": design[:, k].tolist() for k in range(len(FEATURE_NAMES))})
    return np.array([r["p"] for r in rows])


def test_the_models_sql_forms_give_numpys_probabilities(context: AppContext) -> None:
    design = feature_rows(400)
    labels = (design[:, 4] + design[:, 5] / 3 + np.random.default_rng(4).normal(0, 0.5, len(design))) > 0.8
    knots = choose_knots(design)
    assert knots  # the hinged basis has hinges to check
    for basis_name in BASES:
        model = fit_basis(design, labels, basis_name, 1e-3, knots)
        expression = probability_sql(model)
        assert expression is not None
        assert sql_probabilities(context, expression, design) == pytest.approx(model.predict_proba(design), abs=1e-12)
    legacy = LinearConflictModel(FEATURE_NAMES, np.linspace(0, 1, 6), np.linspace(1, 2, 6), np.linspace(-1, 1, 6), -2.0)
    assert sql_probabilities(context, probability_sql(legacy) or "", design) == pytest.approx(
        legacy.predict_proba(design), abs=1e-12)
    heuristic = [heuristic_probability(dict(zip(FEATURE_NAMES, row, strict=True))) for row in design]
    assert sql_probabilities(context, probability_sql(None) or "", design) == pytest.approx(heuristic, abs=1e-12)
    assert probability_sql(object()) is None  # no SQL form: the caller answers in a transaction


def register(context: AppContext, model: LinearConflictModel) -> str:
    version = context.registry.register(kind="conflict", tenant_id=None, artifact=model.to_artifact(),
                                        artifact_format="json", manifest={"note": "test"}, actor="test")
    return version.version_id


def test_the_answer_and_the_shadow_score_are_logged_as_answered(context: AppContext) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    edits = [SyncEvent(client_event_id=f"e{n}", user_id=user, device_id=f"{user}-1", domain="voice",
                       entity_type="recording", entity_id="r1", fields_changed=["notes"], conflicted=n == 2,
                       conflict_fields=[], received_at=NOW - timedelta(hours=5 - n), client_last_sync_at=None)
             for n, user in enumerate(["bob", "carol", "alice", "bob"])]
    with context.database.transaction() as tx:
        store_sync_events(tx, tenant, edits, NOW)
    ones = np.ones(len(FEATURE_NAMES))
    champion = LinearConflictModel(FEATURE_NAMES, 0 * ones, ones, np.linspace(0.2, 1.2, 6), -1.5)
    shadow = LinearConflictModel(FEATURE_NAMES, 0 * ones, ones, -np.linspace(0.2, 1.2, 6), 0.5)
    context.registry.activate(register(context, champion), actor="test")
    context.registry.set_shadow(register(context, shadow), True, actor="test")
    request = ConflictPredictionRequest(domain="voice", user_id="alice", entity_type="recording", entity_id="r1",
                                        fields=["notes"], device_id="alice-1", client_last_sync_at=NOW - timedelta(hours=4))
    answer = predict_conflict(context, tenant, request, "q1", now=NOW)
    assert answer["features"]["other_edits_since_sync"] == 2 and answer["features"]["field_overlap_score"] == 1
    with context.database.transaction() as tx:
        logged = {r["variant"]: r for r in tx.fetch_all(
            "SELECT prediction_id::text AS id, variant, probability, risk_level, features, user_id, device_id,"
            " client_last_sync_at, fields, predicted_at FROM conflict_predictions")}
    assert set(logged) == {"champion", "shadow"}
    row = logged["champion"]
    design = np.array([[answer["features"][name] for name in FEATURE_NAMES]])
    assert row["id"] == answer["prediction_id"] and row["risk_level"] == answer["risk_level"]
    assert row["probability"] == pytest.approx(answer["probability"], abs=1e-6)
    assert row["probability"] == pytest.approx(float(champion.predict_proba(design)[0]), abs=1e-12)
    assert logged["shadow"]["probability"] == pytest.approx(float(shadow.predict_proba(design)[0]), abs=1e-12)
    assert row["features"] == answer["features"]  # the same doubles, through jsonb
    assert (row["user_id"], row["device_id"], row["fields"]) == ("alice", "alice-1", ["notes"])
    assert row["client_last_sync_at"] == request.client_last_sync_at and row["predicted_at"] == NOW


def test_a_statement_that_fails_answers_nothing_and_logs_nothing(context: AppContext) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    request = ConflictPredictionRequest(domain="voice", user_id="alice", entity_type="recording", entity_id="r1")
    # A tenant gone since its key was checked: the log insert violates the tenant's foreign key.
    with pytest.raises(Exception, match="foreign key"):
        predict_conflict(context, str(uuid.uuid4()), request, "q1", now=NOW)
    answer = predict_conflict(context, tenant, request, "q2", now=NOW)  # the connection is usable after
    with context.database.transaction() as tx:
        logged = tx.fetch_all("SELECT prediction_id::text AS id, request_id FROM conflict_predictions")
    assert logged == [{"id": answer["prediction_id"], "request_id": "q2"}]
