"""What the quality metrics read: captures per day, corrections per week, the labelling backlog,
and each assessed reading's score beside what its corrections say."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from shared.adapters.db import Transaction
from shared.ocr.readings_repository import OcrMemory


class QualityRepository(Protocol):
    def daily_captures(self, tx: Any, tenant_id: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """[{day, readings, captured, assessed}] by UTC day of captured_at in [since, until); assessed:
        scored on arrival (an imported history's readings have no score and were never captured)."""
        ...

    def weekly_corrections(self, tx: Any, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
        """[{week (its Monday), corrections, errors}] by arrival."""
        ...

    def backlog(self, tx: Any, tenant_id: str) -> dict[str, int]: ...

    def scored_readings(self, tx: Any, tenant_id: str, since: datetime, settled_before: datetime) -> list[dict[str, Any]]:
        """Readings since `since` with their confidence, error_probability (None: imported), whether
        the latest correction calls them an error and its CER; uncorrected ones only when settled."""
        ...


_DAILY_SQL = """
SELECT (captured_at AT TIME ZONE 'UTC')::date AS day, count(*) AS readings, count(*) FILTER (WHERE captured) AS captured,
       count(*) FILTER (WHERE error_probability IS NOT NULL) AS assessed
FROM ocr_readings WHERE tenant_id = CAST(:tenant AS uuid) AND captured_at >= :since AND captured_at < :until
GROUP BY 1 ORDER BY 1
"""
_WEEKLY_SQL = """
SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week, count(*) AS corrections,
       count(*) FILTER (WHERE is_error) AS errors
FROM ocr_corrections WHERE tenant_id = CAST(:tenant AS uuid) AND created_at >= :since
GROUP BY 1 ORDER BY 1
"""
_BACKLOG_SQL = """
SELECT count(*) FILTER (WHERE r.captured AND c.reading_id IS NULL) AS captured_uncorrected,
       count(*) FILTER (WHERE s.reading_id IS NOT NULL AND c.reading_id IS NULL) AS selected_unlabelled
FROM ocr_readings r
LEFT JOIN (SELECT DISTINCT reading_id FROM ocr_corrections WHERE tenant_id = CAST(:tenant AS uuid)) c
       USING (reading_id)
LEFT JOIN ocr_label_selections s USING (reading_id)
WHERE r.tenant_id = CAST(:tenant AS uuid)
"""
_SCORED_SQL = """
SELECT r.confidence, r.error_probability, COALESCE(c.is_error, false) AS is_error,
       COALESCE(c.character_error_rate, 0) AS cer, (r.captured_at AT TIME ZONE 'UTC')::date AS day
FROM ocr_readings r
LEFT JOIN LATERAL (SELECT k.is_error, k.character_error_rate FROM ocr_corrections k
                   WHERE k.reading_id = r.reading_id ORDER BY k.seq DESC LIMIT 1) c ON true
WHERE r.tenant_id = CAST(:tenant AS uuid) AND r.captured_at >= :since
  AND (c.is_error IS NOT NULL OR r.captured_at < :settled)
"""


class PostgresQualityRepository:
    def daily_captures(self, tx: Transaction, tenant_id: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return tx.fetch_all(_DAILY_SQL, tenant=tenant_id, since=since, until=until)

    def weekly_corrections(self, tx: Transaction, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
        return tx.fetch_all(_WEEKLY_SQL, tenant=tenant_id, since=since)

    def backlog(self, tx: Transaction, tenant_id: str) -> dict[str, int]:
        row = tx.fetch_one(_BACKLOG_SQL, tenant=tenant_id) or {}
        return {k: int(v or 0) for k, v in row.items()}

    def scored_readings(self, tx: Transaction, tenant_id: str, since: datetime,
                        settled_before: datetime) -> list[dict[str, Any]]:
        return tx.fetch_all(_SCORED_SQL, tenant=tenant_id, since=since, settled=settled_before)


class InMemoryQualityRepository:
    def __init__(self, memory: OcrMemory) -> None:
        self.memory = memory

    def _mine(self, tenant_id: str) -> list[dict[str, Any]]:
        return [row for (tenant, _), row in self.memory.readings.items() if tenant == tenant_id]

    def daily_captures(self, tx: Any, tenant_id: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        readings: Counter[date] = Counter()
        captured: Counter[date] = Counter()
        assessed: Counter[date] = Counter()
        for row in self._mine(tenant_id):
            if since <= row["captured_at"] < until:
                day = row["captured_at"].astimezone(UTC).date()
                readings[day] += 1
                captured[day] += int(row["captured"])
                assessed[day] += int(row.get("error_probability") is not None)
        return [{"day": d, "readings": readings[d], "captured": captured[d], "assessed": assessed[d]}
                for d in sorted(readings)]

    def weekly_corrections(self, tx: Any, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
        weeks: dict[date, list[int]] = {}
        for c in self.memory.corrections:
            if c["tenant_id"] == tenant_id and c["created_at"] >= since:
                day = c["created_at"].astimezone(UTC).date()
                counts = weeks.setdefault(day - timedelta(days=day.weekday()), [0, 0])
                counts[0] += 1
                counts[1] += int(c["is_error"])
        return [{"week": w, "corrections": n, "errors": e} for w, (n, e) in sorted(weeks.items())]

    def backlog(self, tx: Any, tenant_id: str) -> dict[str, int]:
        open_rows = [r for r in self._mine(tenant_id) if self.memory.latest_correction(r["reading_id"]) is None]
        return {"captured_uncorrected": sum(1 for r in open_rows if r["captured"]),
                "selected_unlabelled": sum(1 for r in open_rows if r["reading_id"] in self.memory.selections)}

    def scored_readings(self, tx: Any, tenant_id: str, since: datetime, settled_before: datetime) -> list[dict[str, Any]]:
        rows = []
        for row in self._mine(tenant_id):
            latest = self.memory.latest_correction(row["reading_id"])
            if row["captured_at"] < since or (latest is None and row["captured_at"] >= settled_before):
                continue
            rows.append({"confidence": row["confidence"], "error_probability": row["error_probability"],
                         "is_error": bool(latest and latest["is_error"]),
                         "cer": latest["character_error_rate"] if latest else 0.0,
                         "day": row["captured_at"].astimezone(UTC).date()})
        return rows
