"""The unit of work a use case opens: one transaction, handed to each repository it calls.

Repositories take the transaction as their first argument, so one use case's reads and writes
commit together; the in-memory fakes ignore it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Transactions(Protocol):
    def transaction(self) -> AbstractContextManager[Any]: ...


class InMemoryTransactions:
    """The fake: nothing to commit; counts what was opened, for tests that care."""

    def __init__(self) -> None:
        self.opened = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.opened += 1
        yield None
