import numpy as np
import pytest
from sklearn import metrics as skm

from shared.platform.metrics import average_precision, brier_score, log_loss, paired_bootstrap_auc_difference, roc_auc


@pytest.fixture
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.2
    # Rounded scores force many ties, the case hand-written AUCs get wrong.
    scores = np.round(np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1), 2)
    return labels, scores


def test_metrics_agree_with_scikit_learn(sample: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = sample
    assert roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(skm.average_precision_score(labels, scores), abs=1e-12)
    assert brier_score(labels, scores) == pytest.approx(skm.brier_score_loss(labels, scores), abs=1e-12)
    assert log_loss(labels, scores) == pytest.approx(skm.log_loss(labels, scores), abs=1e-9)


def test_auc_is_undefined_for_one_class() -> None:
    assert roc_auc([True, True], [0.1, 0.9]) is None


def test_bootstrap_interval_is_above_zero_only_for_a_real_gain(sample: tuple[np.ndarray, np.ndarray]) -> None:
    labels, scores = sample
    rng = np.random.default_rng(5)
    better = labels * 0.6 + rng.random(len(labels)) * 0.4
    low, high = paired_bootstrap_auc_difference(labels, better, scores, resamples=300)
    assert 0 < low < high
    low, high = paired_bootstrap_auc_difference(labels, scores, scores + rng.normal(0, 1e-3, len(scores)), resamples=300)
    assert low < 0 < high
