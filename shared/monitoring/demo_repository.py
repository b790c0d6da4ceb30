"""Bulk demo points, generated where they are stored: a month of one-minute points per series is
one INSERT ... SELECT over generate_series (about 300,000 rows in a few seconds)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime

from shared.adapters.db import Transaction

_SERIES = """
INSERT INTO metric_series (source, metric) VALUES (:source, :metric)
ON CONFLICT (source, metric) DO UPDATE SET source = EXCLUDED.source RETURNING series_id
"""
# base + a daily cycle (peak at 14:00 UTC) + noise; each spike adds `height` for `minutes` minutes.
_POINTS = """
INSERT INTO metric_points (series_id, ts, value)
SELECT CAST(:series_id AS bigint), ts,
       GREATEST(0, CAST(:base AS float8) + CAST(:daily AS float8) * sin(2 * pi() * (extract(epoch FROM ts) / 86400.0 - 0.33))
                   + CAST(:noise AS float8) * (random() - 0.5)
                   + COALESCE((SELECT sum(CAST(:height AS float8)) FROM unnest(CAST(string_to_array(:spikes, ',') AS timestamptz[])) AS s(at)
                               WHERE ts >= s.at AND ts < s.at + make_interval(mins => CAST(:minutes AS integer))), 0))
FROM generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz), interval '1 minute') AS ts
ON CONFLICT (series_id, ts) DO NOTHING
"""
_TOUCH = "UPDATE metric_series SET last_point_at = (SELECT max(ts) FROM metric_points WHERE series_id = :id) WHERE series_id = :id"


def seed_series(tx: Transaction, source: str, metric: str, start: datetime, end: datetime, *, base: float,
                daily: float, noise: float, spikes: Sequence[datetime], height: float, minutes: int) -> int:
    series_id = int(tx.fetch_value(_SERIES, source=source, metric=metric))
    tx.execute("SELECT setseed(:seed)", seed=(zlib.crc32(f"{source}|{metric}".encode()) % 1000) / 1000.0)
    tx.execute(_POINTS, series_id=series_id, start=start, end=end, base=base, daily=daily, noise=noise,
               spikes=",".join(at.isoformat() for at in spikes), height=height, minutes=minutes)
    tx.execute(_TOUCH, id=series_id)
    return series_id


def has_series(tx: Transaction, source: str, metric: str) -> bool:
    return bool(tx.fetch_value("SELECT EXISTS (SELECT 1 FROM metric_series WHERE source = :source AND metric = :metric)",
                               source=source, metric=metric))


def rewind_scans(tx: Transaction, sources: Sequence[str], until: datetime) -> None:
    """Mark the demo series scanned up to `until`, so the next scan scores only what follows."""
    # Locked in id order first, as the scan and pushes lock series (a collector may push meanwhile).
    tx.fetch_all("SELECT series_id FROM metric_series WHERE source = ANY(CAST(string_to_array(:sources, ',') AS text[]))"
                 " ORDER BY series_id FOR NO KEY UPDATE", sources=",".join(sources))
    tx.execute("UPDATE metric_series SET scanned_until = :until WHERE source = ANY(CAST(string_to_array(:sources, ',') AS text[]))",
               until=until, sources=",".join(sources))
