"""`mlstack agent`: read the host (psutil) every interval and push the readings to
POST /api/v2/metrics. Timestamps are the reading's minute, so a batch sent twice (a retry after a
lost answer) stores nothing twice; readings that could not be sent wait for the next push (at most
MAX_BUFFERED points, oldest dropped first).

What a refusal means decides what happens to the batch: a refused key (401/403) ends the agent,
since no retry can fix it; a refused batch (400/413/422) is dropped with an error, since it would
be refused forever; a busy or absent service (429, 5xx, no answer) keeps it for the next push."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.errors import DependencyUnavailable, Unauthenticated
from shared.logs import log_event
from shared.monitoring.host import HostReader

MAX_BUFFERED = 5000
KEY_REFUSED = frozenset({401, 403})
BATCH_REFUSED = frozenset({400, 413, 422})


class KeyRefused(Unauthenticated):
    """The service refused the agent's key: fatal, every later push would be refused too."""


class NotDelivered(DependencyUnavailable):
    """`--once` delivered nothing (the batch was refused or the service did not answer)."""


def _answer_text(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read()[:300].decode("utf-8", "replace")
    except OSError:
        return ""


class Agent:
    def __init__(self, url: str, key: str, source: str | None = None,
                 read: Callable[[float], dict[str, float]] | None = None, timeout: float = 10.0) -> None:
        self._endpoint = url.rstrip("/") + "/api/v2/metrics"
        self._key = key
        self.source = source or socket.gethostname()
        self._read = read or HostReader().read
        self._timeout = timeout
        self.buffer: list[dict[str, Any]] = []
        self.delivered = 0  # points the service took since the start
        self.last_problem = ""  # why the last push delivered nothing

    def collect(self, now: float) -> None:
        minute = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0).isoformat()
        for metric, value in self._read(now).items():
            self.buffer.append({"source": self.source, "metric": metric, "ts": minute, "value": value})
        del self.buffer[:-MAX_BUFFERED]

    def push(self) -> dict[str, Any] | None:
        """Send what is buffered; None when the service did not take it (kept for the next push, or
        dropped when the service refused the batch itself). Raises KeyRefused on 401/403."""
        if not self.buffer:
            return {"accepted": 0, "stored": 0, "duplicates": 0}
        request = urllib.request.Request(
            self._endpoint, data=json.dumps({"points": self.buffer}).encode(), method="POST",
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - our own URL
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            self._refused(exc.code, _answer_text(exc))
            return None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self._kept(str(exc)[:200])
            return None
        self.delivered += len(self.buffer)
        self.buffer.clear()
        return answer

    def _refused(self, status: int, text: str) -> None:
        if status in KEY_REFUSED:
            raise KeyRefused(f"{self._endpoint} refused the agent's key (HTTP {status}): check MLSTACK_AGENT_KEY"
                             " or --key (an operator or service key of this deployment)")
        if status in BATCH_REFUSED:
            self.last_problem = f"HTTP {status}, batch of {len(self.buffer)} points dropped: {text}"
            log_event("agent.batch_refused", logging.ERROR, endpoint=self._endpoint, status=status, answer=text,
                      dropped=len(self.buffer))
            self.buffer.clear()  # it would be refused again at every push
        else:
            self._kept(f"HTTP {status}: {text}")

    def _kept(self, problem: str) -> None:
        self.last_problem = f"{problem}; {len(self.buffer)} points kept for the next push"
        log_event("agent.push_failed", logging.WARNING, endpoint=self._endpoint, error=problem,
                  buffered=len(self.buffer))

    def run(self, interval: float = 60.0, iterations: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> None:
        done = 0
        while iterations is None or done < iterations:
            started = time.time()
            self.collect(started)
            answer = self.push()
            if answer is not None:  # a failure logged its own line
                log_event("agent.pushed", source=self.source, answer=answer)
            done += 1
            if iterations is None or done < iterations:
                sleep(max(interval - (time.time() - started), 0.0))
