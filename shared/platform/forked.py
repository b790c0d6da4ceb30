"""CPU-bound work split over processes that share what this process has already read: a forked
child inherits this process's memory (copy-on-write: the numpy arrays of a history read, say), so
it needs no database and reads nothing again. This process does the first part, a child each other.

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
from shared.errors import FieldProblem, MlstackError

Part = TypeVar("Part")


def _answer_from_child(part: Any, work: Callable[[Any], str], answer: Connection) -> None:
    """The child: the work, the answer; then os._exit, so nothing inherited from the parent (its
    database connection above all, which the work never touches) is finalised here."""
    try:
        text = work(part)
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


def map_forked(parts: Sequence[Part], work: Callable[[Part], str]) -> list[str]:
    """work(part) for every part, the first here and each other in a forked child. The work must
    not use the database (a child shares this process's connection's socket)."""
    processes = multiprocessing.get_context("fork")
    children: list[tuple[Any, Connection]] = []
    try:
        for part in parts[1:]:
            # One pipe per child, made just before it starts and its sending end closed here right
            # after: no later child holds it, so a child's death is an EOF at once.
            answer, child_end = processes.Pipe(duplex=False)
            child = processes.Process(target=_answer_from_child, daemon=True, args=(part, work, child_end))
            child.start()
            child_end.close()
            children.append((child, answer))
        answers = [work(parts[0])]
        answers += [_received(answer, child, n + 2, len(parts)) for n, (child, answer) in enumerate(children)]
        return answers
    finally:
        for child, answer in children:
            if child.is_alive():
                child.terminate()
            child.join()
            answer.close()
