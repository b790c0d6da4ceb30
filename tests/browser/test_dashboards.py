"""The dashboards in a real browser (Debian's headless Chromium), against the API served as a
process on the local run's demo data: every chart draws data, no console errors, staff move the
fraud operating point, an operator acknowledges an incident, a client key sees no data. One seeded
stack and one browser for the module; screenshots go to .mlstack/artifacts/screenshots/ (or
MLSTACK_SCREENSHOTS_DIR, e.g. docs/screenshots to refresh README's)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.db import Database
from tests.browser.stack import (
    PAGES,
    ROOT,
    browser_missing,
    charts,
    chromium,
    get_json,
    screenshot,
    seed_demo,
    serving,
    severe_logs,
    sign_in,
    wait_drawn,
)
from tests.conftest import truncate_all

pytestmark = [pytest.mark.integration, pytest.mark.browser]
SCREENSHOTS = Path(os.environ.get("MLSTACK_SCREENSHOTS_DIR") or ROOT / ".mlstack" / "artifacts" / "screenshots")
# The charts each page must draw (titles as the page shows them, some per anomaly on top).
MIN_CHARTS = {"ocr": 3, "conflict": 5, "fraud": 2, "monitoring": 3}


@pytest.fixture(scope="module")
def stack(migrated_database: Database, database_url: str, aws_endpoint_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """As scripts/run.sh serves it: real PostgreSQL, a local-folder object store, the demo."""
    if (missing := browser_missing()) is not None:
        pytest.fail(missing)
    truncate_all(migrated_database)
    tmp = tmp_path_factory.mktemp("browser")
    env = {"MLSTACK_DATABASE_URL": database_url, "MLSTACK_OBJECT_STORE_URL": f"file://{tmp / 'objects'}",
           "MLSTACK_AWS_ENDPOINT_URL": aws_endpoint_url, "MLSTACK_SIGNING_KEY": secrets.token_hex(32),
           "MLSTACK_STAGE": "local", "MLSTACK_LOG_LEVEL": "WARNING"}
    keys = seed_demo(env)
    with serving(env, tmp / "server.log") as base:
        driver = chromium(tmp / "profile")
        try:
            yield {"base": base, "keys": keys, "driver": driver}
        finally:
            driver.quit()
    truncate_all(migrated_database)


def open_page(stack: dict[str, Any], page: str, role: str) -> Any:
    driver = stack["driver"]
    sign_in(driver, stack["base"], stack["keys"][role], page)
    assert wait_drawn(driver) == "ready", driver.find_element("id", "status").text
    return driver


@pytest.mark.parametrize("page", PAGES)
def test_each_page_draws_every_chart_without_console_errors(stack: dict[str, Any], page: str) -> None:
    driver = open_page(stack, page, "operator" if page == "monitoring" else "staff")
    drawn = charts(driver)
    assert len(drawn) >= MIN_CHARTS[page], drawn
    empty = [c["title"] for c in drawn if c["points"] <= 0 or not c["drawn"]]
    assert empty == [], drawn
    assert severe_logs(driver) == []
    screenshot(driver, SCREENSHOTS / f"{page}.png")
    assert (SCREENSHOTS / f"{page}.png").stat().st_size > 10_000


def test_staff_move_the_fraud_operating_point_and_it_is_saved(stack: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_page(stack, "fraud", "staff")
    before = get_json(f"{stack['base']}/api/v2/fraud/operating-point", stack["keys"]["staff"])
    choices = [b for b in driver.find_elements(By.CSS_SELECTOR, "button.use-threshold")
               if abs(float(b.get_attribute("data-threshold")) - before["review_threshold"]) > 0.01]
    target = choices[len(choices) // 2]
    threshold = float(target.get_attribute("data-threshold"))
    driver.execute_script("arguments[0].scrollIntoView()", target)
    target.click()
    driver.find_element(By.ID, "save-operating-point").click()
    result = driver.find_element(By.ID, "operating-point-result")
    WebDriverWait(driver, 10).until(lambda d: result.get_attribute("data-saved") == "true" or "not saved" in result.text)
    assert result.get_attribute("data-saved") == "true", result.text
    after = get_json(f"{stack['base']}/api/v2/fraud/operating-point", stack["keys"]["staff"])
    assert after["source"] == "tenant"
    assert after["review_threshold"] == pytest.approx(threshold)
    assert after["block_threshold"] >= threshold
    assert severe_logs(driver) == []


def test_an_operator_acknowledges_and_silences_from_the_page(stack: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_page(stack, "monitoring", "operator")
    button = driver.find_element(By.CSS_SELECTOR, "button.acknowledge")
    incident_id = button.get_attribute("data-incident")
    driver.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    WebDriverWait(driver, 10).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, f"button.acknowledge[data-incident='{incident_id}']"))
    incidents = get_json(f"{stack['base']}/api/v2/monitoring/incidents?limit=500", stack["keys"]["operator"])
    mine = next(i for i in incidents["incidents"] if i["incident_id"] == incident_id)
    assert mine["status"] == "acknowledged"
    assert mine["acknowledged_by"].startswith("key:")

    silence = driver.find_element(By.CSS_SELECTOR, "button.silence")
    source = silence.get_attribute("data-source")
    driver.execute_script("arguments[0].scrollIntoView()", silence)
    silence.click()
    WebDriverWait(driver, 10).until(lambda d: "silenced" in silence.text)
    silences = get_json(f"{stack['base']}/api/v2/monitoring/silences", stack["keys"]["operator"])["silences"]
    assert any(s["source"] == source and s["metric"] == "%" for s in silences)
    assert severe_logs(driver) == []


@pytest.mark.parametrize(("role", "page"), [("client", "conflict"), ("client", "fraud"), ("staff", "monitoring"),
                                            (None, "ocr")])
def test_a_key_without_the_role_or_no_key_sees_the_sign_in_page_and_no_data(
        stack: dict[str, Any], role: str | None, page: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = stack["driver"]
    if role is None:
        driver.get(f"{stack['base']}/dashboards")
        driver.execute_script("sessionStorage.clear()")
        driver.get(f"{stack['base']}/dashboards/{page}")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.page") == "signin")
    else:
        sign_in(driver, stack["base"], stack["keys"][role], page)
        WebDriverWait(driver, 10).until(lambda d: "reason=denied" in d.current_url)
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert driver.execute_script("return document.body.dataset.page") == "signin"
    assert charts(driver) == []
    assert driver.execute_script("return document.querySelectorAll('table, .figure').length") == 0
    assert driver.execute_script("return sessionStorage.getItem('mlstack.apiKey')") is None
    driver.get_log("browser")  # the refused request's 403 is logged by the browser: expected here
    if role == "client":
        screenshot(driver, SCREENSHOTS / "signin.png")
