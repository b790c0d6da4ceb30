"""Value types every intake validates the same way (pydantic constraints)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# Client-chosen ids: letters, digits and _.:@/- (no spaces, quotes or control characters).
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.:@/-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


def ensure_unique(ids: list[str], name: str) -> None:
    """A batch names each client id once (a repeat would make the idempotent answer ambiguous)."""
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name} repeats within the batch")
