"""Outcome tracking for any kind: the kind's outcome source labels every prediction whose outcome
is now known, then live metrics per model version are computed from the log, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from shared.platform.prediction_log import PredictionLog
from shared.platform.transactions import Transactions


class OutcomeSource(Protocol):
    def label_due(self, session: Any, now: datetime) -> int:
        """Give every due, unlabelled prediction its outcome (set-based; a re-run labels nothing
        twice); returns how many were labelled."""
        ...


def track_outcomes(
    transactions: Transactions, outcomes: OutcomeSource, log: PredictionLog, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    with transactions.transaction() as session:
        labelled = outcomes.label_due(session, now)
        metrics = log.store_live_metrics(session, now)
    return {"labelled": labelled, "metrics": metrics}
