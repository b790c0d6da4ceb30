"""Drift of a model's inputs: the serving inputs of the last N days (the prediction log) against
the distribution the model was trained on (the manifest's deciles and category shares).

Numeric inputs: a Kolmogorov-Smirnov distance measured at the training deciles (where the training
CDF is known exactly: k/10, so the sketch adds no error; for discrete inputs, to the interval the
neighbouring deciles allow) and PSI over the decile bins. Categorical
inputs (low-cardinality integers with shares in the manifest): chi-square and total variation.

The decision is sample-size aware: drift needs both a significant test (p < ALPHA; few rows are
rarely significant) and an effect that matters (KS >= 0.1, PSI >= 0.2 or TV >= 0.1; with many
rows, significance alone would flag differences nobody should act on)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.logs import log_event
from shared.monitoring.alerting import publish_new, raise_alerts
from shared.monitoring.alerts_repository import AlertIn
from shared.monitoring.services import MonitoringServices
from shared.monitoring.watched import WatchedKind

ALPHA = 0.01
MIN_ROWS = 50
KS_EFFECT, PSI_EFFECT, TV_EFFECT = 0.1, 0.2, 0.1


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    test: str  # ks+psi | chi_square
    statistic: float
    p_value: float
    psi: float | None
    rows: int
    drifted: bool


def numeric_drift(feature: str, values: NDArray[np.float64], deciles: Sequence[float],
                  training_rows: int) -> FeatureDrift:
    from scipy.special import kolmogorov

    # Rounded as the sketch was (kinds.feature_quantiles), so a value equal to a decile compares equal.
    x = np.sort(np.round(values[np.isfinite(values)], 6))
    n = len(x)
    q = np.asarray(deciles, dtype=np.float64)
    inner = q[1:-1]
    # Discrete inputs (counts, tied deciles): the training CDF is only known to lie between
    # neighbouring deciles at each decile value, so the distance is measured to that interval.
    discrete = len(np.unique(inner)) < len(inner) or (n > 0 and len(np.unique(x)) <= n / 2)
    distance = 0.0
    for value in np.unique(inner):
        held = np.where(q == value)[0]
        below = np.searchsorted(x, value, side="left") / max(n, 1)
        at_or_below = np.searchsorted(x, value, side="right") / max(n, 1)
        if discrete:
            high, low = held.max() / 10, held.min() / 10
            gaps = (high - at_or_below, at_or_below - min(high + 0.1, 1.0), low - 0.1 - below, below - low)
            distance = max(distance, *gaps)
        else:
            distance = max(distance, abs(at_or_below - held.max() / 10), abs(below - held.min() / 10))
    effective = n * training_rows / (n + training_rows) if n and training_rows else float(n)
    p_value = float(kolmogorov(math.sqrt(effective) * distance)) if n else 1.0
    # PSI over the bins between distinct inner deciles (training share: deciles per bin / 10). A bin
    # holds the values above its lower edge up to and including its upper one, on both sides: a
    # discrete input's many values equal to an edge land in the bin the training share counts them in.
    edges = np.unique(q[1:-1])
    expected = np.diff(np.concatenate([[0.0], [np.where(q <= e)[0].max() / 10 for e in edges], [1.0]]))
    observed = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1) / max(n, 1)
    e, o = np.maximum(expected, 1e-4), np.maximum(observed, 1e-4)
    psi = float(np.sum((o - e) * np.log(o / e)))
    # PSI's expected shares come from the deciles: exact for continuous inputs, coarse for discrete
    # ones, where it is reported but does not decide.
    matters = distance >= KS_EFFECT or (psi >= PSI_EFFECT and not discrete)
    drifted = n >= MIN_ROWS and p_value < ALPHA and matters
    return FeatureDrift(feature, "ks+psi", round(distance, 6), p_value, round(psi, 6), n, drifted)


def categorical_drift(feature: str, values: NDArray[np.float64], shares: Mapping[str, float]) -> FeatureDrift:
    from scipy.special import chdtrc

    x = values[np.isfinite(values)]
    n = len(x)
    labels = [f"{v:g}" for v in x]
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label if label in shares else "other"] += 1
    categories = list(shares) + (["other"] if counts.get("other") else [])
    expected = np.array([shares.get(c, 0.0) for c in categories], dtype=np.float64)
    # A value never seen in training gets a tiny expected share: seen often, it is drift.
    expected = np.maximum(expected, 1e-3)
    expected = expected / expected.sum()
    observed = np.array([counts.get(c, 0) for c in categories], dtype=np.float64)
    chi2 = float(np.sum((observed - n * expected) ** 2 / (n * expected))) if n else 0.0
    p_value = float(chdtrc(max(len(categories) - 1, 1), chi2)) if n else 1.0
    tv = 0.5 * float(np.sum(np.abs(observed / max(n, 1) - expected)))
    drifted = n >= MIN_ROWS and p_value < ALPHA and tv >= TV_EFFECT
    return FeatureDrift(feature, "chi_square", round(tv, 6), p_value, None, n, drifted)


def feature_drift(kind: Any, manifest: Mapping[str, Any], feature_rows: Sequence[Mapping[str, Any]]) -> list[FeatureDrift]:
    """Each model input of the rows (transformed as the model sees them) against the manifest."""
    design = _design(kind, feature_rows)
    quantiles = manifest.get("feature_quantiles") or {}
    frequencies = manifest.get("feature_frequencies") or {}
    training_rows = int((manifest.get("split") or {}).get("train_rows") or manifest.get("rows") or 0)
    results = []
    for column, name in enumerate(kind.feature_names):
        values = design[:, column]
        if name in frequencies:
            results.append(categorical_drift(name, values, frequencies[name]))
        elif quantiles.get(name):
            results.append(numeric_drift(name, values, quantiles[name], training_rows))
    return results


def _design(kind: Any, rows: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
    clean = [{k: (np.nan if v is None else v) for k, v in row.items()} for row in rows]
    try:
        design: NDArray[np.float64] = kind.design_matrix(clean)
        return design
    except (KeyError, TypeError, ValueError):
        usable = [r for r in clean if all(name in r for name in kind.feature_names)]
        fallback: NDArray[np.float64] = kind.design_matrix(usable) if usable else np.empty((0, len(kind.feature_names)))
        return fallback


def check_drift(services: MonitoringServices, watched: Mapping[str, WatchedKind], *, days: int = 30,
                now: datetime | None = None, retrain: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every watched kind, per tenant: its serving inputs of the last `days` against the manifest of
    the version that serves it. Drifted inputs become alerts; with `retrain`, a drifted kind is
    retrained early (once per run)."""
    now = now or datetime.now(UTC)
    reports: list[dict[str, Any]] = []
    alerts: list[AlertIn] = []
    with services.transactions.transaction() as tx:
        logged = {name: services.drift.serving_features(tx, w.table, now - timedelta(days=days), now)
                  for name, w in watched.items()}
    for name, w in watched.items():
        by_tenant: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for row in logged[name]:
            by_tenant[row["tenant_id"]].append(row["features"])
        for tenant_id, rows in sorted(by_tenant.items()):
            version = services.registry.active_version(name, tenant_id)
            if version is None:
                continue  # the heuristic serves: no training distribution to compare with
            for result in feature_drift(w.kind, version.manifest, rows):
                reports.append({"computed_at": now, "kind": name, "tenant_id": tenant_id,
                                "model_version_id": version.version_id, "feature": result.feature,
                                "test": result.test, "statistic": result.statistic, "p_value": result.p_value,
                                "psi": result.psi, "serving_rows": result.rows, "drifted": result.drifted})
                if result.drifted:
                    alerts.append(AlertIn(f"model:{name}", f"drift:{result.feature}", "drift",
                                          min(1.0, max(result.statistic, result.psi or 0.0) * 2), now,
                                          (result.test,), result.statistic, tenant_id))
    drifted_kinds = sorted({a.source.removeprefix("model:") for a in alerts})
    with services.transactions.transaction() as tx:
        services.drift.store_reports(tx, reports)
        counts = raise_alerts(tx, services.alerts, alerts, now, services.incident_window)
        publish_new(tx, services.alerts, services.notifier)
    retrained = {}
    if retrain is not None:
        for name in drifted_kinds:
            log_event("monitoring.drift_retrain", kind=name)
            retrained[name] = retrain(name)
    return {"reports": len(reports), "drifted": [{k: r[k] for k in ("kind", "tenant_id", "feature", "statistic",
                                                                     "p_value", "psi")}
                                                 for r in reports if r["drifted"]],
            "drifted_kinds": drifted_kinds, "alerts": counts, "retrained": retrained}
