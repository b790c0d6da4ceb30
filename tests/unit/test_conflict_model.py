"""The conflict model's serving form: artifacts round-trip exactly, bad ones are refused, the old
form still serves, and the basis chosen on validation beats the plain one where the truth needs it."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shared.conflict.features import FEATURE_NAMES
from shared.conflict.fitting import fit_basis, select_and_fit
from shared.conflict.kind import CONFLICT
from shared.conflict.model import (
    BASES,
    BasisLogisticModel,
    LinearConflictModel,
    design_matrix,
    heuristic_probability,
    load_model,
    risk_level,
)
from shared.platform.kinds import TrainingSet
from shared.platform.metrics import average_precision, reliability_table
from shared.platform.retraining import decide_promotion

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _random_rows(n: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    """Conflicts need someone else's edit since the last sync, and bite harder the longer the
    device was away: an interaction a plain logistic regression cannot express."""
    rng = np.random.default_rng(seed)
    others = rng.poisson(0.6, n).astype(float)
    overlap = np.where(others > 0, rng.random(n), 0.0)
    hours = rng.exponential(20, n)
    rows = [
        {
            "concurrent_editors": float(rng.poisson(1.0)),
            "hours_since_last_sync": float(hours[i]),
            "user_conflict_rate": float(rng.beta(1, 9)),
            "entity_edit_frequency": float(rng.exponential(2)),
            "field_overlap_score": float(overlap[i]),
            "other_edits_since_sync": float(others[i]),
        }
        for i in range(n)
    ]
    logits = -4.5 + (others > 0) * (1.0 + 3.0 * overlap + 0.5 * np.log1p(hours))
    labels = rng.random(n) < 1 / (1 + np.exp(-logits))
    return rows, labels


def _training_set(rows: list[dict[str, float]], labels: np.ndarray) -> TrainingSet:
    times = [T0 + timedelta(minutes=i) for i in range(len(labels))]
    return TrainingSet(design_matrix(rows), labels, times, T0, times[-1])


def test_artifacts_round_trip_to_the_same_probabilities() -> None:
    rows, labels = _random_rows(3000, seed=1)
    fitted = CONFLICT.fit(_training_set(rows, labels))
    test_rows, _ = _random_rows(500, seed=2)
    restored = CONFLICT.load(fitted.artifact)
    np.testing.assert_allclose(restored.predict_proba(design_matrix(test_rows)),
                               fitted.model.predict_proba(design_matrix(test_rows)), rtol=0, atol=1e-12)
    # Rows (live) and columns (batch, training) give the same matrix.
    columns = {name: np.array([r[name] for r in test_rows]) for name in FEATURE_NAMES}
    np.testing.assert_array_equal(design_matrix(columns), design_matrix(test_rows))
    assert fitted.manifest_extra["basis"] in BASES
    assert len(fitted.manifest_extra["model_selection"]["candidates"]) == len(BASES) * 3


def test_the_chosen_basis_beats_the_plain_one_when_the_truth_has_interactions() -> None:
    rows, labels = _random_rows(20000, seed=3)
    test_rows, test_labels = _random_rows(10000, seed=4)
    selection = select_and_fit(_training_set(rows, labels))
    plain = fit_basis(design_matrix(rows), labels, "plain", 1e-4, {})
    chosen = average_precision(test_labels, selection.model.predict_proba(design_matrix(test_rows)))
    baseline = average_precision(test_labels, plain.predict_proba(design_matrix(test_rows)))
    assert selection.basis != "plain" and chosen is not None and baseline is not None and chosen > baseline


def test_reliability_table_by_decile() -> None:
    p = np.linspace(0.0, 0.9, 100)
    table = reliability_table(p > 0.45, p)
    assert [row["decile"] for row in table] == list(range(1, 11)) and sum(row["rows"] for row in table) == 100
    assert table[0]["observed_rate"] == 0.0 and table[-1]["observed_rate"] == 1.0
    assert table[0]["mean_predicted"] < table[-1]["mean_predicted"]


def test_first_form_artifacts_still_serve() -> None:
    n = 5
    names = FEATURE_NAMES[:n]
    legacy = LinearConflictModel(names, np.zeros(n), np.ones(n), np.full(n, 0.2), -2.0)
    loaded = CONFLICT.load(legacy.to_artifact())
    rows, _ = _random_rows(10, seed=5)
    design = design_matrix(rows)
    picked = design[:, :n].copy()
    for column in (0, 1, 3):  # editors, hours, frequency: log1p in the first form
        picked[:, column] = np.log1p(picked[:, column])
    expected = 1 / (1 + np.exp(-(picked @ np.full(n, 0.2) - 2.0)))
    np.testing.assert_allclose(loaded.predict_proba(design), expected, atol=1e-12)


@pytest.mark.parametrize(("p", "level"), [(0.0, "low"), (0.19, "low"), (0.2, "medium"), (0.49, "medium"), (0.5, "high"), (1.0, "high")])
def test_risk_levels(p: float, level: str) -> None:
    assert risk_level(p) == level


def test_heuristic_rises_with_overlap_and_stays_a_probability() -> None:
    base = {name: 0.0 for name in FEATURE_NAMES} | {"user_conflict_rate": 0.1}
    low = heuristic_probability(base)
    high = heuristic_probability(base | {"field_overlap_score": 1.0, "concurrent_editors": 3.0})
    assert 0 < low < high < 1


@pytest.mark.parametrize(
    ("candidate", "champion", "interval", "promoted"),
    [
        (0.70, 0.80, (-0.15, -0.05), False),  # worse
        (0.82, 0.80, (0.005, 0.03), False),   # better, but by less than 5 %
        (0.85, 0.80, (-0.01, 0.10), False),   # 6 % better, but the interval includes 0
        (0.85, 0.80, (0.02, 0.08), True),     # 6 % better and significant
        (0.75, None, None, True),             # first model, good enough
        (0.55, None, None, False),            # first model, too weak
    ],
)
def test_promotion_rule(candidate: float, champion: float | None, interval: tuple[float, float] | None, promoted: bool) -> None:
    decision, reason = decide_promotion(candidate, champion, interval)
    assert decision is promoted
    assert reason


def test_heuristic_is_the_documented_formula() -> None:
    features = {"field_overlap_score": 0.5, "concurrent_editors": 2.0, "hours_since_last_sync": 10.0,
                "user_conflict_rate": 0.3, "entity_edit_frequency": 4.0}
    logit = -3.0 + 2.5 * 0.5 + 0.6 * np.log1p(2.0) + 0.3 * np.log1p(10.0) + 4.0 * (0.3 - 0.1)
    assert heuristic_probability(features) == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-12)


@pytest.mark.parametrize(
    ("syncs", "edits", "expected"),
    [(0, 0, 0.0), (10, 0, 0.25), (20, 0, 0.5), (40, 5, 1.0), (10, 10, 0.5), (20, 2, 0.7)],
)
def test_confidence_is_the_documented_support(syncs: int, edits: int, expected: float) -> None:
    from shared.conflict.features_repository import confidence

    assert confidence({"support_user_syncs": syncs, "support_entity_edits": edits}) == pytest.approx(expected)


@pytest.mark.parametrize(
    "change",
    [{"coefficients": [1.0]}, {"scales": "zero"}, {"feature_names": ["unknown"] * 6},
     {"means": "nan"}, {"basis": "quadratic"}, {"serving_form": "pickle"}, {"intercept": float("inf")}],
)
def test_artifacts_that_do_not_fit_the_features_are_refused(change: dict) -> None:
    rows, labels = _random_rows(600, seed=4)
    model = fit_basis(design_matrix(rows), labels, "interactions", 1e-3, {})
    payload = json.loads(model.to_artifact())
    width = len(payload["means"])
    if change.get("scales") == "zero":
        change = {"scales": [0.0] * width}
    if change.get("means") == "nan":
        change = {"means": [float("nan")] * width}
    with pytest.raises(ValueError):
        load_model(payload | change)
    assert isinstance(load_model(payload), BasisLogisticModel)
