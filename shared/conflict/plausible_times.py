"""The plausible range of every sync timestamp (README, "Sync events"): events, requests and batch
scoring check against it. Its own module so batch scoring's quick checks need no request models."""

from __future__ import annotations

from datetime import UTC, datetime

# Outside it a client clock has gone wrong, and PostgreSQL would store year 1 as 1 BC or
# 9999-12-31-14:00 as year 10000.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
