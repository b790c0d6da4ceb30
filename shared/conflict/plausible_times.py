"""The plausible range of every sync timestamp (README, "Sync events"): events, requests and batch
scoring check against it. Its own module so batch scoring's quick checks need no request models;
the range itself is the platform's, shared with every other intake (shared/platform/validation.py)."""

from __future__ import annotations

from shared.platform.validation import EARLIEST_TIME, LATEST_TIME

__all__ = ["EARLIEST_TIME", "LATEST_TIME"]
