"""The five conflict features, computed in SQL *as of* a time from events strictly before it.

One SQL text serves training, batch scoring and live prediction: only the source of the
"requests" (what to compute features for, and as of when) differs. For training the requests are
the stored sync events themselves (as of their own received_at, so an event never sees itself or
anything after it); for scoring and prediction they come in as a JSON recordset. Each feature is
one LATERAL subquery that the indexes on sync_events answer with a range scan, and a whole batch
is one round trip.

Definitions (also in README):
- concurrent_editors: distinct other users who edited the same entity in the 24 hours before.
- hours_since_last_sync: hours since this user's last sync (any entity), capped at 720.
- user_conflict_rate: (the user's conflicts + 1) / (the user's syncs + 10) over the 90 days
  before, so a new user starts at 0.1, not 0 or 1.
- entity_edit_frequency: syncs of the entity per day over the 7 days before.
- field_overlap_score: the share of "my fields" that other users changed on this entity since my
  last sync (or in the 30 days before, if I never synced); "my fields" are the request's fields when
  given, else every field the user edited in the 30 days before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from shared.adapters.db import Database, Transaction
from shared.conflict.model import FEATURE_NAMES, design_matrix
from shared.platform.kinds import TrainingSet

CONCURRENT_WINDOW = "24 hours"
CONFLICT_RATE_WINDOW = "90 days"
EDIT_FREQUENCY_DAYS = 7
USUAL_FIELDS_WINDOW = "30 days"
HOURS_CAP = 720.0
PRIOR_CONFLICTS = 1.0
PRIOR_SYNCS = 10.0


@dataclass(frozen=True)
class FeatureRequest:
    request_id: str
    tenant_id: str
    user_id: str
    domain: str
    entity_type: str
    entity_id: str
    fields: tuple[str, ...] | None
    as_of: datetime

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["fields"] = list(self.fields) if self.fields else None
        values["as_of"] = self.as_of.isoformat()
        return values


# `{requests}` yields: request_id, tenant_id, user_id, domain, entity_type, entity_id, fields,
# as_of, label (NULL when unknown).
_FEATURES_SQL = f"""
WITH requests AS ({{requests}})
SELECT
    r.request_id,
    r.as_of,
    r.label,
    COALESCE(editors.n, 0)::float8 AS concurrent_editors,
    LEAST(COALESCE(EXTRACT(EPOCH FROM r.as_of - last_sync.at) / 3600.0, {HOURS_CAP}), {HOURS_CAP})::float8
        AS hours_since_last_sync,
    ((COALESCE(history.conflicts, 0) + {PRIOR_CONFLICTS}) / (COALESCE(history.syncs, 0) + {PRIOR_SYNCS}))::float8
        AS user_conflict_rate,
    (COALESCE(recent.edits, 0) / {EDIT_FREQUENCY_DAYS}.0)::float8 AS entity_edit_frequency,
    CASE WHEN COALESCE(cardinality(mine.fields), 0) = 0 THEN 0.0
         ELSE (SELECT count(*) FROM unnest(mine.fields) AS f WHERE f = ANY(theirs.fields))::float8
              / cardinality(mine.fields)
    END AS field_overlap_score,
    COALESCE(history.syncs, 0) AS support_user_syncs,
    COALESCE(recent.edits, 0) AS support_entity_edits
FROM requests r
LEFT JOIN LATERAL (
    SELECT count(DISTINCT e.user_id) AS n FROM sync_events e
    WHERE e.tenant_id = r.tenant_id AND e.domain = r.domain AND e.entity_type = r.entity_type
      AND e.entity_id = r.entity_id AND e.user_id <> r.user_id
      AND e.received_at >= r.as_of - INTERVAL '{CONCURRENT_WINDOW}' AND e.received_at < r.as_of
) editors ON TRUE
LEFT JOIN LATERAL (
    SELECT max(e.received_at) AS at FROM sync_events e
    WHERE e.tenant_id = r.tenant_id AND e.user_id = r.user_id AND e.received_at < r.as_of
) last_sync ON TRUE
LEFT JOIN LATERAL (
    SELECT count(*) AS syncs, count(*) FILTER (WHERE e.conflicted) AS conflicts FROM sync_events e
    WHERE e.tenant_id = r.tenant_id AND e.user_id = r.user_id
      AND e.received_at >= r.as_of - INTERVAL '{CONFLICT_RATE_WINDOW}' AND e.received_at < r.as_of
) history ON TRUE
LEFT JOIN LATERAL (
    SELECT count(*) AS edits FROM sync_events e
    WHERE e.tenant_id = r.tenant_id AND e.domain = r.domain AND e.entity_type = r.entity_type
      AND e.entity_id = r.entity_id
      AND e.received_at >= r.as_of - INTERVAL '{EDIT_FREQUENCY_DAYS} days' AND e.received_at < r.as_of
) recent ON TRUE
LEFT JOIN LATERAL (
    SELECT COALESCE(r.fields, (
        SELECT array_agg(DISTINCT f) FROM sync_events e CROSS JOIN LATERAL unnest(e.fields_changed) AS f
        WHERE e.tenant_id = r.tenant_id AND e.user_id = r.user_id
          AND e.received_at >= r.as_of - INTERVAL '{USUAL_FIELDS_WINDOW}' AND e.received_at < r.as_of
    )) AS fields
) mine ON TRUE
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT f) AS fields FROM sync_events e CROSS JOIN LATERAL unnest(e.fields_changed) AS f
    WHERE e.tenant_id = r.tenant_id AND e.domain = r.domain AND e.entity_type = r.entity_type
      AND e.entity_id = r.entity_id AND e.user_id <> r.user_id
      AND e.received_at >= COALESCE(last_sync.at, r.as_of - INTERVAL '{USUAL_FIELDS_WINDOW}')
      AND e.received_at < r.as_of
) theirs ON TRUE
ORDER BY r.as_of, r.request_id
"""

_REQUESTS_FROM_JSON = """
SELECT request_id, tenant_id, user_id, domain, entity_type, entity_id, fields, as_of, NULL::boolean AS label
FROM jsonb_to_recordset(CAST(:requests AS jsonb)) AS x(
    request_id text, tenant_id uuid, user_id text, domain text, entity_type text, entity_id text,
    fields text[], as_of timestamptz)
"""

_REQUESTS_FROM_EVENTS = """
SELECT e.event_id::text AS request_id, e.tenant_id, e.user_id, e.domain, e.entity_type, e.entity_id,
       e.fields_changed AS fields, e.received_at AS as_of, e.conflicted AS label
FROM sync_events e
WHERE e.received_at >= :start AND e.received_at < :end
  AND (CAST(:tenant AS uuid) IS NULL OR e.tenant_id = CAST(:tenant AS uuid))
"""

FEATURES_FOR_REQUESTS_SQL = _FEATURES_SQL.format(requests=_REQUESTS_FROM_JSON)
FEATURES_FOR_STORED_EVENTS_SQL = _FEATURES_SQL.format(requests=_REQUESTS_FROM_EVENTS)


def features_for_requests(tx: Transaction, requests: Sequence[FeatureRequest]) -> list[dict[str, Any]]:
    """Features for live prediction and batch scoring: one query for the whole batch, rows in
    as_of order (request_id breaks ties)."""
    if not requests:
        return []
    payload = json.dumps([request.as_json() for request in requests])
    return tx.fetch_all(FEATURES_FOR_REQUESTS_SQL, requests=payload)


def features_for_stored_events(
    tx: Transaction, start: datetime, end: datetime, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """Training rows: every sync event received in [start, end), with its features as of its own
    receipt and its label (did it conflict)."""
    return tx.fetch_all(FEATURES_FOR_STORED_EVENTS_SQL, start=start, end=end, tenant=tenant_id)


def feature_vector(row: dict[str, Any]) -> dict[str, float]:
    return {name: float(row[name]) for name in FEATURE_NAMES}


def confidence(row: dict[str, Any]) -> float:
    """How much history the features rest on, 0..1: the user's syncs in the last 90 days against
    20 (a user with 20 or more has a settled conflict rate), times the entity's recent edits against
    5 (with fewer, overlap and editors say little), each capped at 1."""
    user_support = min(1.0, float(row["support_user_syncs"]) / 20.0)
    entity_support = min(1.0, float(row["support_entity_edits"]) / 5.0)
    return round(user_support * (0.5 + 0.5 * entity_support), 4)


class ConflictFeatures(Protocol):
    def for_requests(self, session: Any, requests: Sequence[FeatureRequest]) -> list[dict[str, Any]]:
        """Feature rows (the five features, support counts, request_id, as_of) in as_of order."""
        ...


class PostgresConflictFeatures:
    def for_requests(self, session: Transaction, requests: Sequence[FeatureRequest]) -> list[dict[str, Any]]:
        return features_for_requests(session, requests)


class PostgresConflictTrainingSource:
    """Training rows: every sync event of the window, features as of its own receipt, its label."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        with self._database.transaction() as tx:
            rows = features_for_stored_events(tx, start, end, tenant_id)
        design = design_matrix([feature_vector(row) for row in rows])
        labels = np.array([bool(row["label"]) for row in rows], dtype=bool)
        return TrainingSet(design, labels, [row["as_of"] for row in rows], start, end)


class InMemoryConflictFeatures:
    """The fake: features set per (user_id, entity_id), else a user and entity with no history."""

    def __init__(self, features: dict[tuple[str, str], dict[str, float]] | None = None) -> None:
        self.features = features or {}

    def for_requests(self, session: Any, requests: Sequence[FeatureRequest]) -> list[dict[str, Any]]:
        rows = []
        for request in sorted(requests, key=lambda r: (r.as_of, r.request_id)):
            values = self.features.get((request.user_id, request.entity_id), {})
            rows.append({
                "request_id": request.request_id, "as_of": request.as_of, "label": None,
                **{name: float(values.get(name, 0.0)) for name in FEATURE_NAMES},
                "hours_since_last_sync": float(values.get("hours_since_last_sync", HOURS_CAP)),
                "user_conflict_rate": float(values.get("user_conflict_rate", PRIOR_CONFLICTS / PRIOR_SYNCS)),
                "support_user_syncs": int(values.get("support_user_syncs", 0)),
                "support_entity_edits": int(values.get("support_entity_edits", 0)),
            })
        return rows
