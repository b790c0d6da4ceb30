"""What the browser tests and scripts/bench_dashboards.py share: the demo seeded into a database,
keys for each role, the API served as a process, and Debian's headless Chromium driven through its
own chromedriver (passed explicitly: Selenium Manager never downloads a browser or a driver)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MLSTACK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MLSTACK_CHROMEDRIVER", "/usr/bin/chromedriver")
PAGES = ("ocr", "conflict", "fraud", "monitoring")
KEY_STORAGE = "mlstack.apiKey"


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} is missing: scripts/test.sh installs Debian's chromium and chromium-driver"
    return None


def seed_demo(settings_env: dict[str, str]) -> dict[str, str]:
    """The local run's demo (histories, models, replayed predictions, a month of monitoring points)
    and a key of each role: staff and client of the demo tenant, an operator."""
    from shared.context import AppContext
    from shared.demo import DEMO_SLUG, ensure_demo
    from shared.settings import Settings

    fields = {k.removeprefix("MLSTACK_").lower(): v for k, v in settings_env.items()}
    context = AppContext(Settings(**fields))
    try:
        for line in ensure_demo(context):
            if "key" not in line:
                print(line, flush=True)
        directory = context.tenants
        demo = directory.find_tenant(DEMO_SLUG).tenant_id
        platform = directory.create_tenant("platform", "Platform (operators)").tenant_id
        return {"staff": directory.create_key(demo, "staff").secret,
                "client": directory.create_key(demo, "client").secret,
                "operator": directory.create_key(platform, "operator").secret,
                "tenant_id": demo}
    finally:
        context.database.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str, key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The API as `scripts/run.sh` serves it (functions/local_gateway.py) on a free port."""
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "functions.local_gateway", "--host", "127.0.0.1", "--port", str(port),
             "--stage", "local"], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    get_json(f"{base}/health")
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the API did not start: " + log_path.read_text()[-2000:]) from None
                    time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=10)


def chromium(user_data_dir: Path, width: int = 1400, height: int = 1000) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Without the background-networking flags Chromium reaches out at start (refused here).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def sign_in(driver: Any, base: str, key: str, page: str) -> None:
    """Through the sign-in form, as a person would: the key, then the page it asked for."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/dashboards?next={page}")
    field = WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "api-key"))
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()


def wait_drawn(driver: Any, timeout: float = 30) -> str:
    """Until the page says its data is drawn, it shows an error, or it went to the sign-in page;
    returns which ("ready", "error", "signin")."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("if (document.body.dataset.ready === 'true') return 'ready';"
              " if (document.body.dataset.page === 'signin' && document.readyState === 'complete') return 'signin';"
              " var s = document.getElementById('status'); return s && s.className.includes('error') ? 'error' : null;")
    state: str = WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))
    return state


def charts(driver: Any) -> list[dict[str, Any]]:
    """Every chart element of the page: its title, the data points it reports, whether uPlot drew it."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('.chart')).map(function (c) { return {"
        " title: c.dataset.title, points: Number(c.dataset.points), drawn: !!c.querySelector('canvas') }; });"))


def severe_logs(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, path: Path, width: int = 1400) -> None:
    """The whole page (the window grown to its height, up to 5,000 px), then the window as it was."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(width, min(height + 40, 5000))
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 1000)
