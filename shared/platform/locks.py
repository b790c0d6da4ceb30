"""Exclusive sections across processes, by name: one retrain per (kind, tenant) at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Locks(Protocol):
    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try to take the lock without waiting; yields whether it was taken."""
        ...


def run_alone(locks: Locks, name: str, busy: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()` while holding `name`; `{"skipped": busy}` when another run holds it. For jobs of which
    a second run beside the first would do the same work again (score the same points, retrain the
    same scopes once the first released them)."""
    with locks.exclusive(name) as taken:
        return run() if taken else {"skipped": busy}


class InMemoryLocks:
    """The fake: one process's threads exclude each other."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._guard = threading.Lock()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        with self._guard:
            taken = name not in self._held
            if taken:
                self._held.add(name)
        try:
            yield taken
        finally:
            if taken:
                with self._guard:
                    self._held.discard(name)


class DatabaseLocks:
    """PostgreSQL advisory session locks: they hold across processes and die with the session."""

    def __init__(self, database: _SessionLocking) -> None:
        self._database = database

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        return self._database.session_lock(name)


class _SessionLocking(Protocol):
    def session_lock(self, name: str) -> AbstractContextManager[bool]: ...
