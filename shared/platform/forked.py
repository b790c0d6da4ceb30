"""Read-only work split over processes that see the same data: this process does the first part
in a transaction whose snapshot it exports, and a forked child does each other part in its own
connection on that snapshot, so the parts read exactly what one process would have.

Each answer is text, returned in the parts' order. The first part (in order) that fails is raised
here as the error it was (an MlstackError keeps its class, message and fields); a child that ends
without answering is an error too, not a hang.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from shared import errors
from shared.adapters.db import Database, Transaction
from shared.errors import FieldProblem, MlstackError

Part = TypeVar("Part")


def _answer_from_child(database: Database, snapshot: str, part: Any, work: Callable[[Transaction, Any], str],
                       answer: Connection) -> None:
    """The child: its own connection on the parent's snapshot, the work, the answer; then os._exit,
    so nothing inherited from the parent (its connection above all) is finalised here."""
    try:
        with database.shared_snapshot(snapshot) as (tx, _):
            text = work(tx, part)
        database.close()
        answer.send(("ok",))
        answer.send_bytes(text.encode())
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which raises it
        if isinstance(exc, MlstackError):
            answer.send(("error", type(exc).__name__, exc.message, [(f.field, f.reason) for f in exc.fields]))
        else:
            answer.send(("error", MlstackError.__name__, f"{type(exc).__name__}: {exc}", []))
    finally:
        answer.close()
        os._exit(0)


def _received(answer: Connection, child: Any, number: int, parts: int) -> str:
    try:
        message = answer.recv()
        if message[0] == "ok":
            return answer.recv_bytes().decode()
    except EOFError:
        child.join(5)
        raise MlstackError(f"process {number} of {parts} ended without an answer (exit code {child.exitcode})"
                           ) from None
    _, name, text, fields = message
    kind = getattr(errors, name, MlstackError)
    raise kind(text, [FieldProblem(field, reason) for field, reason in fields])


def map_on_one_snapshot(database: Database, parts: Sequence[Part], work: Callable[[Transaction, Part], str]
                        ) -> list[str]:
    """work(tx, part) for every part, the first here and each other in a forked child, all on one
    snapshot. The work only reads: the transactions are read-only."""
    processes = multiprocessing.get_context("fork")
    children: list[tuple[Any, Connection]] = []
    try:
        with database.shared_snapshot() as (tx, snapshot):
            for part in parts[1:]:
                # One pipe per child, made just before it starts and its sending end closed here
                # right after: no later child holds it, so a child's death is an EOF at once.
                answer, child_end = processes.Pipe(duplex=False)
                child = processes.Process(target=_answer_from_child, daemon=True,
                                          args=(database.for_another_process(), snapshot, part, work, child_end))
                child.start()
                child_end.close()
                children.append((child, answer))
            answers = [work(tx, parts[0])]
            # Inside the transaction: its snapshot stays importable until every child has its answer.
            answers += [_received(answer, child, n + 2, len(parts)) for n, (child, answer) in enumerate(children)]
        return answers
    finally:
        for child, answer in children:
            if child.is_alive():
                child.terminate()
            child.join()
            answer.close()
