"""Each series' precedent memory (`metric_precedents`): written by refresh-precedents, read by the
minute scan in one statement. PostgreSQL and the in-memory fake."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.monitoring.precedent_memory import PrecedentMemory


class PrecedentsRepository(Protocol):
    def replace(self, session: Any, series_ids: Sequence[int], memories: Mapping[int, PrecedentMemory],
                computed_at: datetime) -> None:
        """The memories of `series_ids` become `memories` (one row per series, replaced); a series
        of `series_ids` without one in `memories` (too short to score now) loses its row."""
        ...

    def memories(self, session: Any) -> dict[int, PrecedentMemory]:
        """series_id -> its memory, every series at once."""
        ...


_UPSERT = """
INSERT INTO metric_precedents (series_id, memory, computed_at)
SELECT id, CAST(m AS jsonb), CAST(:at AS timestamptz)
FROM unnest(CAST(:ids AS bigint[]), CAST(:memories AS text[])) AS u(id, m)
ON CONFLICT (series_id) DO UPDATE SET memory = EXCLUDED.memory, computed_at = EXCLUDED.computed_at
"""
_CLEAR = "DELETE FROM metric_precedents WHERE series_id = ANY(CAST(:ids AS bigint[]))"
# The memory as text: one json.loads per row, not pg8000's jsonb conversion and then ours.
_MEMORIES = "SELECT series_id, memory::text AS memory FROM metric_precedents"


class PostgresPrecedentsRepository:
    def replace(self, session: Any, series_ids: Sequence[int], memories: Mapping[int, PrecedentMemory],
                computed_at: datetime) -> None:
        if memories:
            session.execute(_UPSERT, ids=list(memories), at=computed_at,
                            memories=[json.dumps(m.to_dict()) for m in memories.values()])
        gone = [series_id for series_id in series_ids if series_id not in memories]
        if gone:
            session.execute(_CLEAR, ids=gone)

    def memories(self, session: Any) -> dict[int, PrecedentMemory]:
        return {int(r["series_id"]): PrecedentMemory.from_dict(json.loads(r["memory"]))
                for r in session.fetch_all(_MEMORIES)}


class InMemoryPrecedentsRepository:
    def __init__(self) -> None:
        self.rows: dict[int, tuple[PrecedentMemory, datetime]] = {}

    def replace(self, session: Any, series_ids: Sequence[int], memories: Mapping[int, PrecedentMemory],
                computed_at: datetime) -> None:
        for series_id in series_ids:
            self.rows.pop(series_id, None)
        self.rows.update({series_id: (memory, computed_at) for series_id, memory in memories.items()})

    def memories(self, session: Any) -> dict[int, PrecedentMemory]:
        return {series_id: memory for series_id, (memory, _) in self.rows.items()}
