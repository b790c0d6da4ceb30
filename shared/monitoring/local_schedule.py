"""`mlstack schedule`: the monitoring jobs on their deployed rates, in one local process.

Deployed, EventBridge runs collect-metrics and scan-metrics every minute and check-drift,
compact-metrics and refresh-precedents daily; the local run (scripts/run.sh) has no EventBridge, so it starts this, and
a local run raises alerts like the deployed functions do. Jobs run in the order given (collect
before scan, so a minute's points are scanned in the same round); a job that fails is logged and
tried again at its next time; a missed time is skipped, not caught up. SIGTERM or SIGINT stops
the loop between jobs (a job in progress finishes its transaction)."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.logs import log_event

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
# Daily jobs first run a few minutes after the start, not while the run command is starting up.
FIRST_DAILY_AFTER = 300.0
# The longest the loop sleeps in one piece between jobs: see _wait_in_slices.
WAKE_EVERY = 1.0


def rate_seconds(expression: str) -> float | None:
    """EventBridge `rate(N unit)` in seconds; None for a cron expression (not scheduled locally)."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return float(int(match[1]) * _UNIT_SECONDS[match[2].rstrip("s")])


@dataclass
class Scheduled:
    name: str
    every: float
    run: Callable[[], dict[str, Any]]
    next_at: float = 0.0


def run_schedule(entries: Sequence[Scheduled], stop: threading.Event, *, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None, rounds: int | None = None) -> dict[str, int]:
    """Run each entry every `every` seconds until `stop` is set (or after `rounds` rounds that ran
    something). Returns how often each job ran. `wait(seconds)` sleeps, returning True when
    stopped (default: _wait_in_slices)."""
    wait = wait or (lambda seconds: _wait_in_slices(stop, seconds))
    start = clock()
    for entry in entries:
        entry.next_at = start + (0.0 if entry.every <= 60 else min(entry.every, FIRST_DAILY_AFTER))
    runs = {entry.name: 0 for entry in entries}
    done_rounds = 0
    while not stop.is_set():
        due = [entry for entry in entries if entry.next_at <= clock()]
        for entry in due:
            if stop.is_set():
                break
            started = clock()
            try:
                result = entry.run()
                summary = {k: v for k, v in result.items() if isinstance(v, int | float | str)}
                log_event("schedule.ran", job=entry.name, seconds=round(clock() - started, 3), result=summary)
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
                log_event("schedule.failed", job=entry.name, error=str(exc)[:300])
            runs[entry.name] += 1
            entry.next_at += entry.every
            if entry.next_at <= clock():  # fell behind: the next time from now, no catching up
                entry.next_at = clock() + entry.every
        if due:
            done_rounds += 1
            if rounds is not None and done_rounds >= rounds:
                break
        if entries and wait(max(0.0, min(e.next_at for e in entries) - clock())):
            break
    return runs


def _wait_in_slices(stop: threading.Event, seconds: float) -> bool:
    """stop.wait(seconds), woken every WAKE_EVERY seconds. Python runs a signal's handler in the
    main thread, but the kernel may deliver the signal to any thread of the process (numpy's
    OpenBLAS workers, say): the main thread is then not interrupted and slept on to the end of its
    wait, up to a minute after a SIGTERM (a CI run's schedule test waited 30 s for the end). Back
    from each slice, the main thread runs the pending handler."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if stop.wait(min(left, WAKE_EVERY)):
            return True
    return stop.is_set()


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (the run command stopping it) and SIGINT (Ctrl-C) end the loop cleanly. The event is
    set from a thread of its own: a handler runs in the main thread between two bytecodes, perhaps
    while that thread holds the event's lock inside `stop.wait`, and setting it there would wait on
    that lock forever (the process never ended after a SIGTERM)."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: threading.Thread(target=stop.set, daemon=True).start())
