"""`mlstack agent`: read the host (psutil) every interval and push the readings to
POST /api/v2/metrics. Timestamps are the reading's minute, so a batch sent twice (a retry after a
lost answer) stores nothing twice; readings that could not be sent wait for the next push (at most
MAX_BUFFERED points, oldest dropped first)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.logs import log_event
from shared.monitoring.host import HostReader

MAX_BUFFERED = 5000


class Agent:
    def __init__(self, url: str, key: str, source: str | None = None,
                 read: Callable[[float], dict[str, float]] | None = None, timeout: float = 10.0) -> None:
        self._endpoint = url.rstrip("/") + "/api/v2/metrics"
        self._key = key
        self.source = source or socket.gethostname()
        self._read = read or HostReader().read
        self._timeout = timeout
        self.buffer: list[dict[str, Any]] = []

    def collect(self, now: float) -> None:
        minute = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0).isoformat()
        for metric, value in self._read(now).items():
            self.buffer.append({"source": self.source, "metric": metric, "ts": minute, "value": value})
        del self.buffer[:-MAX_BUFFERED]

    def push(self) -> dict[str, Any] | None:
        """Send what is buffered; None (kept for the next push) when the service did not take it."""
        if not self.buffer:
            return {"accepted": 0, "stored": 0, "duplicates": 0}
        request = urllib.request.Request(
            self._endpoint, data=json.dumps({"points": self.buffer}).encode(), method="POST",
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - our own URL
                answer: dict[str, Any] = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log_event("agent.push_failed", endpoint=self._endpoint, error=str(exc)[:200], buffered=len(self.buffer))
            return None
        self.buffer.clear()
        return answer

    def run(self, interval: float = 60.0, iterations: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> None:
        done = 0
        while iterations is None or done < iterations:
            started = time.time()
            self.collect(started)
            answer = self.push()
            log_event("agent.pushed", source=self.source, answer=answer)
            done += 1
            if iterations is None or done < iterations:
                sleep(max(interval - (time.time() - started), 0.0))
