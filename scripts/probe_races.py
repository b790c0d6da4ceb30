#!/usr/bin/env python3
"""Requests that race each other, against an API already running (the run command's, on 127.0.0.1):

    .venv/bin/python scripts/probe_races.py --url http://127.0.0.1:8000 --client-key K --staff-key K
        [--rounds 20] [--requests 100]

1. Reversed batches: each round, 4 writers post the same 70 new ids at once, half of them in reverse
   order, to POST /api/v2/events/sync, /attendance/events and /ocr/readings (PostgreSQL deadlocks on
   rows locked in other orders unless the inserts take one order; a deadlock the API cannot absorb
   by running the request again is a 503 `concurrent_update`).
2. A connection per request: 8 threads each send REQUESTS reads (GET /api/v2/fraud/operating-point,
   staff key) with `Connection: close` (the local server gives each client connection a thread: its
   database session must end with it, or the server runs PostgreSQL out of sessions).

Prints the answers' status codes per route as JSON, then as a table. Every answer should be a 200.
"""

from __future__ import annotations

import argparse
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

WRITERS, BATCH, READERS = 4, 70, 8


def _send(url: str, key: str, body: Any | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def _batches(tag: str, now: datetime) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Per route: the body's list name and the batch of BATCH new ids."""
    last_sync = (now - timedelta(hours=1)).isoformat()
    return {
        "/api/v2/events/sync": ("events", [
            {"client_event_id": f"{tag}-s{i:03d}", "user_id": f"probe-u{i % 5}", "device_id": "probe-d",
             "domain": "voice", "entity_type": "recording", "entity_id": f"probe-e{i % 9}",
             "fields_changed": ["notes"], "client_last_sync_at": last_sync, "conflicted": False}
            for i in range(BATCH)]),
        "/api/v2/attendance/events": ("events", [
            {"client_event_id": f"{tag}-a{i:03d}", "user_id": f"probe-u{i % 7}", "site_id": "probe-site",
             "device_id": "probe-d", "event_type": "check_in", "occurred_at": (now - timedelta(minutes=i)).isoformat()}
            for i in range(BATCH)]),
        "/api/v2/ocr/readings": ("readings", [
            {"client_reading_id": f"{tag}-r{i:03d}", "source_type": "meter_reading", "source_id": f"{tag}-m{i}",
             "ocr_text": "00123", "confidence": 0.9, "captured_at": now.isoformat(), "unit": "kWh"}
            for i in range(BATCH)]),
    }


def _together(workers: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def reversed_batches(url: str, key: str, rounds: int) -> dict[str, Counter[int]]:
    codes: dict[str, Counter[int]] = {}
    lock = threading.Lock()
    for _ in range(rounds):
        batches = _batches(uuid.uuid4().hex[:8], datetime.now(UTC).replace(microsecond=0))

        def write(k: int, batches: dict[str, tuple[str, list[dict[str, Any]]]] = batches) -> None:
            for route, (name, rows) in batches.items():
                status = _send(url + route, key, {name: rows if k % 2 == 0 else rows[::-1]})
                with lock:
                    codes.setdefault(route, Counter())[status] += 1

        _together(WRITERS, write)
    return codes


def connection_per_request(url: str, key: str, requests: int) -> Counter[int]:
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def read(_: int) -> None:
        for _ in range(requests):
            status = _send(url + "/api/v2/fraud/operating-point", key)
            with lock:
                codes[status] += 1

    _together(READERS, read)
    return codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--client-key", required=True)
    parser.add_argument("--staff-key", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="reads per thread, each on a new connection")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    report = {f"reversed batches: {route}": dict(counts)
              for route, counts in reversed_batches(url, args.client_key, args.rounds).items()}
    report["a connection per request: GET /api/v2/fraud/operating-point"] = dict(
        connection_per_request(url, args.staff_key, args.requests))
    print(json.dumps(report, indent=2))
    print("\n| probe | answers |\n| --- | --- |")
    for probe, counts in report.items():
        print(f"| {probe} | {', '.join(f'{n} x {status}' for status, n in sorted(counts.items()))} |")
    return 0 if all(set(counts) == {200} for counts in report.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
