import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shared.conflict.model import (
    FEATURE_NAMES,
    LinearConflictModel,
    design_matrix,
    heuristic_probability,
    risk_level,
)
from shared.conflict.training import TrainingData, train_conflict_model
from shared.platform.retraining import decide_promotion


def _random_rows(n: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "concurrent_editors": float(rng.poisson(1.0)),
            "hours_since_last_sync": float(rng.exponential(20)),
            "user_conflict_rate": float(rng.beta(1, 9)),
            "entity_edit_frequency": float(rng.exponential(2)),
            "field_overlap_score": float(rng.random()),
        }
        for _ in range(n)
    ]
    logits = np.array([-2 + 3 * r["field_overlap_score"] + 0.3 * r["concurrent_editors"] for r in rows])
    labels = rng.random(n) < 1 / (1 + np.exp(-logits))
    return rows, labels


def test_serving_form_matches_the_scikit_learn_pipeline_to_1e_9() -> None:
    rows, labels = _random_rows(2000, seed=1)
    design = design_matrix(rows)
    data = TrainingData(design, labels, list(range(len(labels))), None, None)  # type: ignore[arg-type]
    serving, pipeline = train_conflict_model(data)
    test_rows, _ = _random_rows(500, seed=2)
    test_design = design_matrix(test_rows)
    expected = pipeline.predict_proba(test_design)[:, 1]
    restored = LinearConflictModel.from_artifact(json.loads(serving.to_artifact()))
    np.testing.assert_allclose(restored.predict_proba(test_design), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(restored.predict_rows(test_rows), expected, rtol=0, atol=1e-9)


def test_the_check_would_catch_a_wrong_transform() -> None:
    # The same comparison fails when serving skips the log1p the pipeline was trained with.
    rows, labels = _random_rows(2000, seed=1)
    design = design_matrix(rows)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(design, labels)
    raw = np.array([[r[name] for name in FEATURE_NAMES] for r in rows])
    assert np.max(np.abs(pipeline.predict_proba(raw)[:, 1] - pipeline.predict_proba(design)[:, 1])) > 1e-3


def test_artifact_from_other_transforms_is_refused() -> None:
    rows, labels = _random_rows(300, seed=4)
    serving, _ = train_conflict_model(TrainingData(design_matrix(rows), labels, [], None, None))  # type: ignore[arg-type]
    payload = json.loads(serving.to_artifact())
    payload["log1p_features"] = []
    with pytest.raises(ValueError):
        LinearConflictModel.from_artifact(payload)


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
    [{"coefficients": [1.0]}, {"scales": [1.0, 0.0, 1.0, 1.0, 1.0]}, {"feature_names": ["unknown"] * 5},
     {"means": [float("nan")] * 5}],
)
def test_artifacts_that_do_not_fit_the_features_are_refused(change: dict) -> None:
    rows, labels = _random_rows(300, seed=4)
    serving, _ = train_conflict_model(TrainingData(design_matrix(rows), labels, [], None, None))  # type: ignore[arg-type]
    payload = json.loads(serving.to_artifact()) | change
    with pytest.raises(ValueError):
        LinearConflictModel.from_artifact(payload)
