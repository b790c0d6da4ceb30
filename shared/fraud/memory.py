"""The fraud loop's inputs held in memory: the fakes behind `in_memory_fraud_services`, so the
prediction and learning use cases run in unit tests without PostgreSQL (as conflict and OCR do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.fraud.features import HISTORY_DAYS, Site
from shared.fraud.features_repository import LABEL_LOOKBACK, labelled_training_set
from shared.platform.kinds import TrainingSet
from shared.platform.prediction_log import InMemoryPredictionLog


@dataclass
class FraudMemory:
    """Stored events (dicts shaped like the `attendance_events` rows), sites keyed "tenant|site",
    holidays and investigators' labels keyed (tenant, client_event_id)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    sites: dict[str, Site] = field(default_factory=dict)
    holidays: list[tuple[str, date]] = field(default_factory=list)
    labels: dict[tuple[str, str], bool] = field(default_factory=dict)

    def tenant_events(self, tenant_id: str | None, start: datetime, end: datetime) -> list[dict[str, Any]]:
        chosen = [e for e in self.events if (tenant_id is None or e["tenant_id"] == tenant_id)
                  and start <= e["occurred_at"] < end]
        return sorted(chosen, key=lambda e: e["occurred_at"])

    @classmethod
    def from_demo(cls, history: dict[str, dict[str, Any]]) -> FraudMemory:
        """A generated history (shared/fraud/demo_data.py) as the fakes hold it; slugs stand in for ids."""
        memory = cls()
        for slug, raw in history.items():
            memory.events += [{**e, "tenant_id": slug, "occurred_at": datetime.fromisoformat(e["occurred_at"])}
                              for e in raw["events"]]
            memory.sites |= {f"{slug}|{s['site_id']}": Site(s["latitude"], s["longitude"], s["radius_m"],
                                                             s["timezone"]) for s in raw["sites"]}
            memory.holidays += [(slug, date.fromisoformat(h["date"])) for h in raw["holidays"]]
            memory.labels |= {(slug, label["client_event_id"]): bool(label["is_fraud"]) for label in raw["labels"]}
        return memory


class InMemoryFraudContext:
    """Hands live scoring every earlier event of the tenant in the longest window: a superset of
    what the PostgreSQL query narrows to, so equal features also show that narrowing loses nothing."""

    def __init__(self, memory: FraudMemory) -> None:
        self._memory = memory

    def stored_event(self, session: Any, tenant_id: str, client_event_id: str) -> dict[str, Any] | None:
        return next((dict(e) for e in self._memory.events
                     if e["tenant_id"] == tenant_id and e["client_event_id"] == client_event_id), None)

    def live_inputs(self, session: Any, tenant_id: str, event: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], dict[str, Site], list[tuple[str, date]]]:
        before = event["occurred_at"]
        history = self._memory.tenant_events(tenant_id, before - timedelta(days=HISTORY_DAYS), before)
        sites = {key: site for key, site in self._memory.sites.items() if key.startswith(f"{tenant_id}|")}
        holidays = [(t, day) for t, day in self._memory.holidays if t == tenant_id]
        return history, sites, holidays


class InMemoryFraudTrainingSource:
    def __init__(self, memory: FraudMemory) -> None:
        self._memory = memory

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        events = self._memory.tenant_events(tenant_id, start - timedelta(days=HISTORY_DAYS), end)
        return labelled_training_set(events, self._memory.labels, self._memory.sites, self._memory.holidays,
                                     start, end)


class InMemoryFraudOutcomes:
    """The same label policy as the SQL: a label when there is one, legitimate after 30 days; a
    later label overrides the default."""

    def __init__(self, log: InMemoryPredictionLog, memory: FraudMemory) -> None:
        self._log = log
        self._memory = memory

    def label_due(self, session: Any, now: datetime) -> int:
        changed = 0
        for row in self._log.rows:
            label = self._memory.labels.get((row["tenant_id"], row["client_event_id"]))
            if label is not None and row["outcome"] is not label:
                row["outcome"], row["outcome_at"] = label, now
                changed += 1
            elif label is None and row["outcome"] is None and row["occurred_at"] <= now - LABEL_LOOKBACK:
                row["outcome"], row["outcome_at"] = False, now
                changed += 1
        return changed
