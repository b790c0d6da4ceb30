#!/usr/bin/env python3
"""Page weight and load time of each dashboard, in headless Chromium, on the local run's demo
(a month of one-minute points per monitoring series). Prints JSON, then a table.

Weight: the bytes of the page's HTML, scripts, styles and JSON (the browser's Resource Timing,
encoded bodies; the local server does not compress). Load time: navigation to every chart drawn
(the page's `data-ready-ms`), median of --runs loads with the browser cache off, plus the first.
Baseline, in the same run: the monitoring timeline's month drawn from raw one-minute points
(JSON of every point, uPlot fed 43,200 points) against the page's downsampled buckets.
Needs no services of its own: a PostgreSQL in a temporary folder (scripts/localpg.py).

    .venv/bin/python scripts/bench_dashboards.py [--runs 5] [--json-out results.json]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402

from tests.browser.stack import (  # noqa: E402
    PAGES,
    browser_missing,
    chromium,
    seed_demo,
    serving,
    sign_in,
    wait_drawn,
)

RESOURCES = """
var kinds = {html: 0, js: 0, css: 0, json: 0};
var nav = performance.getEntriesByType('navigation')[0];
kinds.html += nav.encodedBodySize;
performance.getEntriesByType('resource').forEach(function (r) {
  var name = r.name.split('?')[0];
  var kind = name.endsWith('.js') ? 'js' : name.endsWith('.css') ? 'css' : r.initiatorType === 'fetch' ? 'json' : 'other';
  kinds[kind] = (kinds[kind] || 0) + r.encodedBodySize;
});
return kinds;
"""
# The month drawn from raw points, in the page's own uPlot: 43,200 (t, value) pairs.
RAW_DRAW = """
var done = arguments[arguments.length - 1];
var series = arguments[0];
var holder = document.createElement('div'); document.body.appendChild(holder);
var started = performance.now();
var plot = new uPlot({title: 'raw', width: 1300, height: 300, series: [{}, {label: 'raw', stroke: '#2563eb'}]},
                     [series.t, series.value], holder);
requestAnimationFrame(function () { done(performance.now() - started); plot.destroy(); holder.remove(); });
"""
DOWNSAMPLED_DRAW = """
var done = arguments[arguments.length - 1];
var s = arguments[0];
var holder = document.createElement('div'); document.body.appendChild(holder);
var started = performance.now();
var plot = new uPlot({title: 'buckets', width: 1300, height: 300,
                      series: [{}, {label: 'min'}, {label: 'mean'}, {label: 'max'}]}, [s.t, s.min, s.mean, s.max], holder);
requestAnimationFrame(function () { done(performance.now() - started); plot.destroy(); holder.remove(); });
"""


def load_page(driver: Any, base: str, key: str, page: str) -> dict[str, Any]:
    sign_in(driver, base, key, page)
    if wait_drawn(driver, timeout=60) != "ready":
        raise RuntimeError(f"{page} did not draw")
    weight = driver.execute_script(RESOURCES)
    return {"ms": int(driver.execute_script("return Number(document.body.dataset.readyMs)")),
            "bytes": {k: int(v) for k, v in weight.items() if v}}


def raw_month(settings_env: dict[str, str], source: str, metric: str) -> dict[str, list[float]]:
    from shared.adapters.db import Database

    database = Database(settings_env["MLSTACK_DATABASE_URL"])
    try:
        with database.transaction() as tx:
            rows = tx.fetch_all(
                "SELECT extract(epoch FROM p.ts)::float8 AS t, p.value FROM metric_points p"
                " JOIN metric_series s USING (series_id) WHERE s.source = :source AND s.metric = :metric ORDER BY p.ts",
                source=source, metric=metric)
    finally:
        database.close()
    return {"t": [r["t"] for r in rows], "value": [r["value"] for r in rows]}


def measure(runs: int) -> dict[str, Any]:
    if (missing := browser_missing()) is not None:
        raise SystemExit(missing)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = localpg.start(work / "pg", localpg.free_port(), fast=True)
        try:
            env = {"MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": f"file://{work / 'objects'}",
                   "MLSTACK_SIGNING_KEY": secrets.token_hex(32), "MLSTACK_STAGE": "local", "MLSTACK_LOG_LEVEL": "WARNING"}
            from shared.adapters.db import Database
            from shared.adapters.migrate import migrate

            database = Database(url)
            migrate(database)
            database.close()
            keys = seed_demo(env)
            with serving(env, work / "server.log") as base:
                driver = chromium(work / "profile")
                try:
                    pages = {}
                    for page in PAGES:
                        key = keys["operator" if page == "monitoring" else "staff"]
                        first = load_page(driver, base, key, page)
                        driver.execute_cdp_cmd("Network.enable", {})
                        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
                        loads = [load_page(driver, base, key, page) for _ in range(runs)]
                        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
                        pages[page] = {"first_load_ms": first["ms"], "median_load_ms": statistics.median(x["ms"] for x in loads),
                                       "bytes": loads[-1]["bytes"], "total_bytes": sum(loads[-1]["bytes"].values())}
                    raw = raw_month(env, "api", "p95_latency_ms")
                    downsampled = json.loads(driver.execute_script(
                        "return fetch('/api/v2/monitoring/series?source=api&metric=p95_latency_ms&points=1300',"
                        " {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('mlstack.apiKey')}})"
                        ".then(function (r) { return r.text(); });"))
                    raw_draw = [driver.execute_async_script(RAW_DRAW, raw) for _ in range(runs)]
                    bucket_draw = [driver.execute_async_script(DOWNSAMPLED_DRAW, downsampled) for _ in range(runs)]
                finally:
                    driver.quit()
        finally:
            localpg.stop(work / "pg")
    timeline = {
        "raw_points": len(raw["t"]), "buckets": len(downsampled["t"]),
        "raw_json_bytes": len(json.dumps(raw)), "downsampled_json_bytes": len(json.dumps(downsampled)),
        "raw_draw_ms": round(statistics.median(raw_draw), 1), "downsampled_draw_ms": round(statistics.median(bucket_draw), 1),
    }
    timeline["json_ratio"] = round(timeline["raw_json_bytes"] / timeline["downsampled_json_bytes"], 1)
    timeline["draw_ratio"] = round(timeline["raw_draw_ms"] / max(timeline["downsampled_draw_ms"], 0.1), 1)
    return {"runs": runs, "pages": pages, "monitoring_month": timeline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    result = measure(args.runs)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    print("\n| page | HTML | JS | CSS | JSON | total | load, first (ms) | load, median (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for page, row in result["pages"].items():
        b = row["bytes"]
        print(f"| {page} | {b.get('html', 0):,} | {b.get('js', 0):,} | {b.get('css', 0):,} | {b.get('json', 0):,} |"
              f" {row['total_bytes']:,} | {row['first_load_ms']} | {row['median_load_ms']:.0f} |")
    t = result["monitoring_month"]
    print("\n| a month of one series | points | JSON bytes | uPlot draw (ms) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw one-minute points (baseline) | {t['raw_points']:,} | {t['raw_json_bytes']:,} | {t['raw_draw_ms']} |")
    print(f"| min/mean/max buckets (the page) | {t['buckets']:,} x 3 | {t['downsampled_json_bytes']:,} |"
          f" {t['downsampled_draw_ms']} |")
    print(f"| ratio | | {t['json_ratio']}x | {t['draw_ratio']}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
