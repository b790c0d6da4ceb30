"""One prediction log for every kind: each answer (and each shadow score) is a row, later given
its outcome, from which live metrics per model version are computed.

Each kind has its own table, `<kind>_predictions`, with the common columns below plus the columns
that say what the prediction was about (the kind's "subject", which its outcome join needs). One
code path writes, reads and measures them all: `PostgresPredictionLog`, with
`InMemoryPredictionLog` as its fake. A per-kind table keeps the request-path insert as narrow as
before (no partition routing, no JSON subject) and lets each outcome join use real indexes.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from shared.adapters.db import Transaction, is_uuid
from shared.platform.metrics import average_precision, brier_score, roc_auc

COMMON_COLUMNS = (
    "prediction_id", "tenant_id", "request_id", "features", "probability", "risk_level", "model_version_id",
    "model_label", "variant", "scope", "predicted_at", "outcome", "outcome_at",
)
LIVE_WINDOWS_DAYS = (7, 30)


@dataclass(frozen=True)
class PredictionRecord:
    tenant_id: str
    request_id: str
    subject: Mapping[str, Any]
    features: Mapping[str, float]
    probability: float
    risk_level: str
    model_version_id: str | None
    model_label: str
    variant: str  # champion | challenger | shadow | heuristic
    scope: str  # tenant | global | heuristic
    predicted_at: datetime


class PredictionLog(Protocol):
    def append(self, session: Any, records: Sequence[PredictionRecord]) -> str:
        """Log one answer and its shadow scores; returns the answer's prediction id."""
        ...

    def get(self, session: Any, tenant_id: str, prediction_id: str) -> dict[str, Any] | None:
        """The answered prediction (never a shadow row) of this tenant, or None."""
        ...

    def store_live_metrics(self, session: Any, now: datetime) -> list[dict[str, Any]]:
        """Per model label and window (7, 30 days): predictions, positives, ROC-AUC, PR-AUC, Brier."""
        ...

    def tenant_live_metrics(self, session: Any, tenant_id: str, now: datetime) -> list[dict[str, Any]]:
        """The same figures over one tenant's predictions only, not stored: what its staff may see of
        a global model (the stored figures pool every tenant the model serves)."""
        ...


# -- PostgreSQL ---------------------------------------------------------------------------------

# Live metrics per model label and window, computed where the rows are, in one statement:
# ROC-AUC by the rank-sum (Mann-Whitney) formula with ties at their average rank; PR-AUC as
# average precision evaluated at each distinct score (as scikit-learn does); Brier as a mean.
_LIVE_METRICS_CTE = """
WITH windows (window_days) AS (VALUES (7), (30)),
labelled AS (
    SELECT w.window_days, p.model_label, p.model_version_id::text AS model_version_id, p.probability,
           p.outcome::int AS outcome
    FROM {table} p
    JOIN windows w ON p.predicted_at >= CAST(:now AS timestamptz) - make_interval(days => w.window_days)
    WHERE p.outcome IS NOT NULL{tenant_filter}
),
ranked AS (
    SELECT *, rank() OVER (PARTITION BY window_days, model_label ORDER BY probability) AS low_rank,
           count(*) OVER (PARTITION BY window_days, model_label, probability) AS ties
    FROM labelled
),
per_score AS (
    SELECT window_days, model_label, probability, count(*) AS n, sum(outcome) AS pos
    FROM labelled GROUP BY window_days, model_label, probability
),
cumulative AS (
    SELECT window_days, model_label, pos,
           sum(pos) OVER (PARTITION BY window_days, model_label ORDER BY probability DESC) AS tp,
           sum(n) OVER (PARTITION BY window_days, model_label ORDER BY probability DESC) AS predicted
    FROM per_score
),
precision_sum AS (
    SELECT window_days, model_label, sum(pos * tp::float8 / predicted) AS weighted_precision
    FROM cumulative GROUP BY window_days, model_label
),
per_model AS (
    SELECT window_days, model_label, max(model_version_id) AS model_version_id,
           count(*) AS predictions, sum(outcome) AS positives,
           sum(low_rank + (ties - 1) / 2.0) FILTER (WHERE outcome = 1) AS positive_rank_sum,
           avg(power(probability - outcome, 2)) AS brier
    FROM ranked GROUP BY window_days, model_label
)
"""
_LIVE_METRICS_VALUES = """
SELECT m.model_label, m.model_version_id, m.window_days, m.predictions, m.positives,
       CASE WHEN m.positives > 0 AND m.positives < m.predictions
            THEN (m.positive_rank_sum - m.positives * (m.positives + 1) / 2.0)
                 / (m.positives * (m.predictions - m.positives))
       END AS roc_auc,
       CASE WHEN m.positives > 0 THEN s.weighted_precision / m.positives END AS pr_auc,
       m.brier
FROM per_model m JOIN precision_sum s USING (window_days, model_label)
"""
_STORE_LIVE_METRICS_SQL = _LIVE_METRICS_CTE.format(table="{table}", tenant_filter="") + """
INSERT INTO model_live_metrics (kind, model_label, model_version_id, window_days, computed_at, predictions,
    positives, roc_auc, pr_auc, brier)
SELECT :kind, v.model_label, CAST(v.model_version_id AS uuid), v.window_days, :now, v.predictions, v.positives,
       v.roc_auc, v.pr_auc, v.brier
FROM (""" + _LIVE_METRICS_VALUES + """) v
RETURNING model_label, model_version_id::text AS model_version_id, window_days, predictions, positives,
          roc_auc::float8 AS roc_auc, pr_auc::float8 AS pr_auc, brier::float8 AS brier
"""
_TENANT_LIVE_METRICS_SQL = _LIVE_METRICS_CTE.format(
    table="{table}", tenant_filter=" AND p.tenant_id = CAST(:tenant AS uuid)") + """
SELECT v.model_label, v.model_version_id, v.window_days, v.predictions, v.positives,
       v.roc_auc::float8 AS roc_auc, v.pr_auc::float8 AS pr_auc, v.brier::float8 AS brier
FROM (""" + _LIVE_METRICS_VALUES + """) v
"""


class PostgresPredictionLog:
    """The log of one kind in its table; `subject_columns` are that table's own columns."""

    def __init__(self, kind: str, table: str, subject_columns: Sequence[str]) -> None:
        self.kind = kind
        self._table = table
        self._subject_columns = tuple(subject_columns)
        self._row_columns = (
            "tenant_id", "request_id", *self._subject_columns, "features", "probability", "risk_level",
            "model_version_id", "model_label", "variant", "scope", "predicted_at",
        )
        self._select = (
            "SELECT prediction_id, request_id, " + ", ".join(self._subject_columns)
            + ", features, probability, risk_level, model_label AS model_version, variant, scope,"
            f" predicted_at, outcome, outcome_at FROM {table}"
            " WHERE prediction_id = CAST(:id AS uuid) AND tenant_id = CAST(:tenant AS uuid) AND variant <> 'shadow'"
        )
        self._metrics_sql = _STORE_LIVE_METRICS_SQL.format(table=table)
        self._tenant_metrics_sql = _TENANT_LIVE_METRICS_SQL.format(table=table)
        self._insert_sql = {1: self._build_insert(1), 2: self._build_insert(2)}

    def _build_insert(self, rows: int) -> str:
        def placeholders(n: int) -> str:
            casts = {"tenant_id": "CAST(:tenant_id{n} AS uuid)", "features": "CAST(:features{n} AS jsonb)",
                     "model_version_id": "CAST(:model_version_id{n} AS uuid)"}
            return "(" + ", ".join(casts.get(c, ":" + c + "{n}").format(n=n) for c in self._row_columns) + ")"

        values = ", ".join(placeholders(n) for n in range(rows))
        return (f"INSERT INTO {self._table} ({', '.join(self._row_columns)}) VALUES {values}"
                " RETURNING prediction_id, variant")

    def _params(self, n: int, record: PredictionRecord) -> dict[str, Any]:
        values: dict[str, Any] = {
            "tenant_id": record.tenant_id, "request_id": record.request_id, "features": json.dumps(record.features),
            "probability": record.probability, "risk_level": record.risk_level,
            "model_version_id": record.model_version_id, "model_label": record.model_label,
            "variant": record.variant, "scope": record.scope, "predicted_at": record.predicted_at,
        }
        values.update({column: record.subject.get(column) for column in self._subject_columns})
        return {f"{name}{n}": value for name, value in values.items()}

    def append(self, session: Transaction, records: Sequence[PredictionRecord]) -> str:
        sql = self._insert_sql.get(len(records)) or self._build_insert(len(records))
        params: dict[str, Any] = {}
        for n, record in enumerate(records):
            params.update(self._params(n, record))
        rows = session.fetch_all(sql, **params)
        return next(str(row["prediction_id"]) for row in rows if row["variant"] != "shadow")

    def get(self, session: Transaction, tenant_id: str, prediction_id: str) -> dict[str, Any] | None:
        if not is_uuid(prediction_id):
            return None
        return session.fetch_one(self._select, id=prediction_id, tenant=tenant_id)

    def store_live_metrics(self, session: Transaction, now: datetime) -> list[dict[str, Any]]:
        metrics = session.fetch_all(self._metrics_sql, kind=self.kind, now=now)
        metrics.sort(key=lambda m: (m["model_label"], m["window_days"]))
        return metrics

    def tenant_live_metrics(self, session: Transaction, tenant_id: str, now: datetime) -> list[dict[str, Any]]:
        metrics = session.fetch_all(self._tenant_metrics_sql, tenant=tenant_id, now=now)
        metrics.sort(key=lambda m: (m["model_label"], m["window_days"]))
        return metrics


# -- in memory ----------------------------------------------------------------------------------


class InMemoryPredictionLog:
    """The fake: rows in a list; outcomes are set by the kind's fake outcome source."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows: list[dict[str, Any]] = []
        self.stored_metrics: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def append(self, session: Any, records: Sequence[PredictionRecord]) -> str:
        answered = ""
        with self._lock:
            for record in records:
                prediction_id = str(uuid.uuid4())
                self.rows.append({
                    "prediction_id": prediction_id, "tenant_id": record.tenant_id, "request_id": record.request_id,
                    **record.subject, "features": dict(record.features), "probability": record.probability,
                    "risk_level": record.risk_level, "model_version_id": record.model_version_id,
                    "model_version": record.model_label, "variant": record.variant, "scope": record.scope,
                    "predicted_at": record.predicted_at, "outcome": None, "outcome_at": None,
                })
                if record.variant != "shadow":
                    answered = prediction_id
        return answered

    def get(self, session: Any, tenant_id: str, prediction_id: str) -> dict[str, Any] | None:
        return next((dict(r) for r in self.rows if r["prediction_id"] == prediction_id
                     and r["tenant_id"] == tenant_id and r["variant"] != "shadow"), None)

    def store_live_metrics(self, session: Any, now: datetime) -> list[dict[str, Any]]:
        metrics = self._live_metrics(now, None)
        self.stored_metrics.extend(metrics)
        return metrics

    def tenant_live_metrics(self, session: Any, tenant_id: str, now: datetime) -> list[dict[str, Any]]:
        return self._live_metrics(now, tenant_id)

    def _live_metrics(self, now: datetime, tenant_id: str | None) -> list[dict[str, Any]]:
        metrics = []
        labelled = [r for r in self.rows if r["outcome"] is not None and tenant_id in (None, r["tenant_id"])]
        for days in LIVE_WINDOWS_DAYS:
            recent = [r for r in labelled if r["predicted_at"] >= now - timedelta(days=days)]
            for label in sorted({r["model_version"] for r in recent}):
                mine = [r for r in recent if r["model_version"] == label]
                y = np.array([bool(r["outcome"]) for r in mine])
                p = np.array([r["probability"] for r in mine])
                metrics.append({
                    "model_label": label, "model_version_id": mine[0]["model_version_id"], "window_days": days,
                    "predictions": len(mine), "positives": int(y.sum()), "roc_auc": roc_auc(y, p),
                    "pr_auc": average_precision(y, p), "brier": brier_score(y, p),
                })
        metrics.sort(key=lambda m: (m["model_label"], m["window_days"]))
        return metrics
