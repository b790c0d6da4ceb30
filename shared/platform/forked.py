"""CPU-bound work split over forked processes that talk with this one: a child inherits this
process's memory (copy-on-write: the text of a file, say) and exchanges values with it over a
pipe, so this process can do once what only it can (a database read) and hand the result out.

A child's work gets a Link to this process and returns its answer as text. An error the work
raises reaches this process when it next receives from that child, as the error it was (an
MlstackError keeps its class, message and fields); a child that ends without answering is an error
too, not a hang. The work must not use this process's database connection (its socket is shared).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared import errors
from shared.errors import FieldProblem, MlstackError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

_VALUE, _TEXT, _ERROR = "value", "text", "error"


class Link:
    """One end of a child's pipe: values both ways, and the child's answer as text."""

    def __init__(self, connection: Connection, name: str = "") -> None:
        self._connection, self._name = connection, name
        self.process: Any = None  # the child's Process, on the parent's side

    def send(self, value: Any) -> None:
        self._connection.send((_VALUE, value))

    def receive(self) -> Any:
        return self._message()

    def answer(self) -> str:
        """The child's answer (what its work returned)."""
        self._message()
        return bytes(self._connection.recv_bytes()).decode()

    def _message(self) -> Any:
        try:
            message = self._connection.recv()
        except EOFError:
            exit_code = None
            if self.process is not None:
                self.process.join(5)
                exit_code = self.process.exitcode
            raise MlstackError(f"{self._name} ended without an answer (exit code {exit_code})") from None
        if message[0] == _ERROR:
            _, name, text, fields = message
            kind = getattr(errors, name, MlstackError)
            raise kind(text, [FieldProblem(field, reason) for field, reason in fields])
        return message[1]  # a value, or None before the answer's text


def _run_child(work: Callable[[Link], str], connection: Connection) -> None:
    """The child: the work, its answer or its error; then os._exit, so nothing inherited from the
    parent (its database connection above all) is finalised here."""
    try:
        text = work(Link(connection, "the parent"))
        connection.send((_TEXT, None))
        connection.send_bytes(text.encode())
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which raises it
        try:
            if isinstance(exc, MlstackError):
                connection.send((_ERROR, type(exc).__name__, exc.message, [(f.field, f.reason) for f in exc.fields]))
            else:
                connection.send((_ERROR, MlstackError.__name__, f"{type(exc).__name__}: {exc}", []))
        except OSError:
            pass  # the parent has gone (it stopped on an earlier error)
    finally:
        connection.close()
        os._exit(0)


@contextmanager
def forked(works: Sequence[Callable[[Link], str]]) -> Iterator[list[Link]]:
    """A child per work, started now, and this process's link to each; on leaving, every child
    still running is stopped and every child reaped."""
    links: list[Link] = []
    try:
        if works:  # imported only then: a file scored in one process, the usual, starts no child (5-8 ms)
            import multiprocessing

            processes = multiprocessing.get_context("fork")
        for number, work in enumerate(works, start=2):
            ours, theirs = processes.Pipe(duplex=True)
            child = processes.Process(target=_run_child, daemon=True, args=(work, theirs))
            child.start()
            theirs.close()  # held by the child alone: its death is an EOF here at once
            link = Link(ours, f"process {number} of {len(works) + 1}")
            link.process = child
            links.append(link)
        yield links
    finally:
        for link in links:
            if link.process.is_alive():
                link.process.terminate()
            link.process.join()
            link._connection.close()
