"""`mlstack agent` against a real HTTP listener that answers as told: a refused key ends it, a
refused batch is dropped, a busy or absent service keeps the readings; `--once` fails when nothing
was delivered; Ctrl-C ends it quietly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.monitoring.agent import Agent

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """A listener answering each POST with the next status of `statuses` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.batches: list[list[dict[str, object]]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.batches.append(body["points"])
                status = service.statuses[min(len(service.batches), len(service.statuses)) - 1]
                answer = {"accepted": len(body["points"])} if status == 200 else {"error": {"code": "refused"}}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service([200])
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def _as_on_a_terminal() -> None:
    # A suite run in the background inherits SIGINT ignored, and Python then never turns it into
    # KeyboardInterrupt; on a terminal, where Ctrl-C comes from, it is not ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def agent_process(url: str, *options: str, key: str = "mlk_bad") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")} | {"MLSTACK_AGENT_KEY": key}
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "agent", "--url", url, "--source", "host-t",
                             *options], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_on_a_terminal)  # noqa: PLW1509 - no threads of ours run in the child


def reading(now: float) -> dict[str, float]:
    return {"cpu_percent": 5.0, "memory_percent": 40.0}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_ends_the_agent_with_one_error_line_once_and_in_its_loop(service: Service, status: int) -> None:
    service.statuses = [status]
    once = agent_process(service.url, "--once")
    out, err = once.communicate(timeout=60)
    assert once.returncode != 0 and out == "" and "Traceback" not in err
    assert err.startswith("error: ") and "key" in err and "MLSTACK_AGENT_KEY" in err, err
    looping = agent_process(service.url, "--interval", "0.05")  # would push 20 times a second if it went on
    out, err = looping.communicate(timeout=60)
    assert looping.returncode != 0 and "Traceback" not in err and f"HTTP {status}" in err
    assert len(service.batches) == 2  # one push each, then the end


@pytest.mark.parametrize("status, resent, level, event", [
    *[(status, False, "ERROR", "agent.batch_refused") for status in (400, 413, 422)],  # refused forever: dropped
    *[(status, True, "WARNING", "agent.push_failed") for status in (429, 500, 503)],  # busy: kept for the next push
])
def test_a_refused_batch_is_dropped_and_a_busy_service_keeps_it_each_logged_and_the_agent_goes_on(
        service: Service, status: int, resent: bool, level: str, event: str, caplog: pytest.LogCaptureFixture) -> None:
    service.statuses = [status, 200]
    agent = Agent(service.url, "mlk_x", "host-t", read=reading)
    agent.collect(time.time())
    assert agent.push() is None and len(agent.buffer) == (2 if resent else 0)
    assert any(r.levelname == level and r.getMessage() == event for r in caplog.records)
    agent.collect(time.time() + 60)
    points = 4 if resent else 2
    assert agent.push() == {"accepted": points} and agent.delivered == points and agent.buffer == []
    assert [len(b) for b in service.batches] == [2, points]
    assert (service.batches[0] == service.batches[1][:2]) == resent  # the same points resent, or never again


def test_a_refused_key_raises_from_push_and_keeps_nothing_to_spin_on(service: Service) -> None:
    from shared.monitoring.agent import KeyRefused

    service.statuses = [401]
    agent = Agent(service.url, "mlk_x", "host-t", read=reading)
    with pytest.raises(KeyRefused):
        agent.run(interval=0, iterations=None, sleep=lambda s: None)
    assert len(service.batches) == 1


def test_once_fails_when_nothing_was_delivered_and_succeeds_when_it_was(service: Service) -> None:
    service.statuses = [400]
    refused = agent_process(service.url, "--once")
    out, err = refused.communicate(timeout=60)
    assert refused.returncode != 0 and out == "" and "HTTP 400" in err and "Traceback" not in err
    absent = agent_process("http://127.0.0.1:1", "--once")
    out, err = absent.communicate(timeout=60)
    assert absent.returncode != 0 and out == "" and "error: nothing delivered" in err and "Traceback" not in err
    service.statuses = [200]
    delivered = agent_process(service.url, "--once")
    out, err = delivered.communicate(timeout=60)
    assert delivered.returncode == 0, err
    answer = json.loads(out)
    assert answer["source"] == "host-t" and answer["delivered"] == len(service.batches[-1]) > 0
    assert answer["buffered"] == 0


def test_ctrl_c_ends_the_agent_quietly(service: Service) -> None:
    looping = agent_process(service.url, "--interval", "60")
    deadline = time.monotonic() + 60
    while not service.batches and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.batches, "the agent never pushed"
    looping.send_signal(signal.SIGINT)  # what Ctrl-C of scripts/run.sh sends its whole process group
    out, err = looping.communicate(timeout=30)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert looping.returncode == 130
