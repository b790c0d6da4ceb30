"""The plausible range of every client-given time (README, "The HTTP API"). Outside it a client
clock has gone wrong, and PostgreSQL would store year 1 as 1 BC or 9999-12-31-14:00 as year 10000.

Its own module, free of pydantic, so batch scoring's quick checks need no request models."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
OUT_OF_RANGE = "must be from 2000-01-01 up to (not including) 2100-01-01 UTC"


def is_plausible_time(value: datetime) -> bool:
    """Compared as aware datetimes, never converted: year 1 at +14:00 would overflow in astimezone."""
    return EARLIEST_TIME <= value < LATEST_TIME
