"""What monitoring watches of a loop: a kind and its prediction log. Kept apart from drift.py so
that building the slice list (every CLI run) does not import the drift check and its services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WatchedKind:
    """A kind whose inputs are watched: its contract (for the design transform) and its log table."""

    kind: Any  # ModelKind
    table: str
