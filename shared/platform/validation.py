"""Value types every intake validates the same way (pydantic constraints)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, StringConstraints

from shared.platform.time_range import OUT_OF_RANGE, is_plausible_time

# Client-chosen ids: letters, digits and _.:@/- (no spaces, quotes or control characters).
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.:@/-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


def _plausible(value: datetime) -> datetime:
    if not is_plausible_time(value):
        raise ValueError(OUT_OF_RANGE)
    return value


# A time with its zone, inside the plausible range (400 naming the field otherwise).
PlausibleTime = Annotated[AwareDatetime, AfterValidator(_plausible)]

# How far a device's clock may run ahead of the service's: a reading, a metric point or a check-in
# stamped later than that has not happened yet.
CLOCK_AHEAD = timedelta(minutes=5)


def _not_ahead(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_AHEAD:
        raise ValueError("must not be more than 5 minutes in the future")
    return value


# A plausible time that has already happened (give or take CLOCK_AHEAD).
PastTime = Annotated[PlausibleTime, AfterValidator(_not_ahead)]


def ensure_unique(ids: list[str], name: str) -> None:
    """A batch names each client id once (a repeat would make the idempotent answer ambiguous, and
    an upsert cannot touch one row twice)."""
    if len(set(ids)) != len(ids):
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"{name} repeats within the batch: {', '.join(repeated[:5])}")


def unique_by(field: str) -> AfterValidator:
    """A batch list's validator: each item's `field` once (the 400 names the list and the repeats)."""
    def check(items: list[Any]) -> list[Any]:
        ensure_unique([getattr(item, field) for item in items], field)
        return items

    return AfterValidator(check)
