#!/usr/bin/env python3
"""Benchmark of the sync-conflict loop at production scale. Prints JSON, then tables.

Starts its own throwaway PostgreSQL (fsync on: the default) and uses a local-folder object store.
Generates a demo history of --events events (one tenant; the history grows in time at a constant
density, as a real deployment's does) and stores it in three steps, 100k, 300k and all of it. At
each size, in the same run:
- features rows/s: the training pass over every stored event (columnar, as of each sync batch's
  start), and the LATERAL SQL of commit 5e64eb2 (read from git at run time) on the newest
  --baseline-rows events against the same history;
- batch scoring rows/s: the newest 20 % of the events scored through `score_conflict_csv`
  (CSV in, features as of each row's as_of, model, CSV out), split over MLSTACK_SCORING_PROCESSES
  (default min(2, cores)), and again in one process (which must write the same bytes);
- training seconds: `train_candidate` on the last 90 days.
At the largest size: warm predict in process (features, model, log insert, commit), p50/p99, of
the one-statement path and of the transaction path it replaced (BEGIN, features, model, insert,
COMMIT: still the path of a model without a SQL form), beside the floor under any logged answer in
the same rounds (a one-row durable commit, and the disk's own fdatasync of an 8 KiB page); and
model quality on the demo hold-out (the
newest 20 %): ROC-AUC, PR-AUC and Brier of the trained model's batch scores against a plain
logistic regression on the five original features computed as of the same moments.

The previous approach: the code of --baseline-ref (default: 8e3d3ad, the code before issue 8's fourth round
of work), exported with `git archive`, runs its own measurements of the same
four things in a child process against the same database at every size, so each number stands
beside the previous one measured in the same run on the same data (--baseline-ref '' skips it).
Each size runs --repeat rounds, alternating the previous code and this one, after one round of
each that is not counted (the first round after an ingest is cold); the best round of each
throughput counts and predict latencies are the median over rounds, since other work on a shared
machine slows single runs at random (every round's figures are in the JSON). Each round also runs
each code's `mlstack score conflict` on the same requests in a fresh interpreter, as a user times
the command, in one process (CLI rows/s; this code's must write the function's bytes).

    .venv/bin/python scripts/bench_conflict.py [--events 1000000] [--predictions 500]
        [--baseline-rows 2000] [--baseline-ref 8e3d3ad] [--repeat 3] [--json FILE]

One batch-scoring case alone (e.g. issue 8's 41,290 requests against 207,600 stored events):

    .venv/bin/python scripts/bench_conflict.py --case 207600:41290 [--baseline-ref 1924b00] [--repeat 5]

stores that many events, trains, and scores the newest ROWS of them as requests, alternating the
previous code's `score_conflict_csv` (in a child process in its exported tree) and this one's,
each split over MLSTACK_SCORING_PROCESSES and in one process, and each code's `mlstack score
conflict` after its function, in one process and then with the user's default processes (none set:
min(2, cores), so the issue's case is split), after one uncounted round of each; every output must
be the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402

BASELINE_REF = "5e64eb2"  # the LATERAL feature SQL
PREVIOUS_CODE_REF = "8e3d3ad"  # the code before this round (issue 8, fourth): features, scoring, training, predict
SIZES = (100_000, 300_000)
USERS = 600
GOAL_ROWS_PER_S = 100_000  # issue 8's batch-scoring goal
EVENTS_PER_USER_PER_DAY = 4.0


def _previous_sql() -> str:
    """The previous approach's feature SQL (one LATERAL subquery per feature), from git."""
    source = subprocess.run(["git", "show", f"{BASELINE_REF}:shared/conflict/features_repository.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("previous_features_repository")
    sys.modules[module.__name__] = module  # its dataclasses look themselves up there
    exec(compile(source, "previous_features_repository.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return str(module.FEATURES_FOR_REQUESTS_SQL)


def _export(ref: str, work: Path) -> Path:
    """The tree of `ref` (git archive), to run the previous code beside this one."""
    tree = work / f"baseline-{ref}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


# Run in a child process inside the previous tree: its own bench functions measure its own code.
_BASELINE_CHILD = """
import json, sys
args = json.load(sys.stdin)
sys.path[:0] = [args["tree"], args["tree"] + "/scripts"]
import bench_conflict as b
from shared.context import AppContext
from shared.settings import Settings
context = AppContext(Settings(database_url=args["url"], object_store_url=args["objects"], signing_key=args["key"]))
if args["predictions"]:
    import inspect, tempfile
    from pathlib import Path
    # Later code also times the disk's fdatasync, in a folder it is given.
    probe = [Path(tempfile.mkdtemp())] if len(inspect.signature(b._predict_latencies).parameters) > 4 else []
    out = b._predict_latencies(context, args["tenant"], args["previous_sql"], args["predictions"], *probe)
else:
    out = {k: v for k, v in b._measure_size(context, args["tenant"], args["previous_sql"], args["rows"]).items()
           if not k.startswith("_")}
print(json.dumps(out, default=str))
"""


# One code's batch scoring of one request file (the score_conflict_csv of the tree given), split and
# in one process, each in a fresh context as _score_csv does; its outputs go to files for comparison.
# Both codes run in such a child, alike: a fresh process with nothing else in its heap.
_BASELINE_SCORING_CHILD = """
import io, json, sys, time
args = json.load(sys.stdin)
sys.path[:0] = [args["tree"]]
from shared.conflict.scoring import score_conflict_csv
from shared.context import AppContext
from shared.settings import Settings
requests = open(args["requests"], newline="").read()
out = {}
for name, processes in (("split", args["processes"]), ("one_process", 1)):
    context = AppContext(Settings(database_url=args["url"], object_store_url=args["objects"], signing_key=args["key"],
                                  scoring_processes=processes))
    scored = io.StringIO()
    started = time.perf_counter()
    score_conflict_csv(context, args["tenant"], io.StringIO(requests), scored)
    out[name] = time.perf_counter() - started
    context.database.close()
    open(args["output"] + "." + name, "w", newline="").write(scored.getvalue())
print(json.dumps(out))
"""


def _baseline(tree: Path | None, setup: dict[str, Any], *, predictions: int = 0) -> dict[str, Any] | None:
    if tree is None:
        return None
    done = subprocess.run([sys.executable, "-c", _BASELINE_CHILD], cwd=tree, check=True, capture_output=True,
                          text=True, input=json.dumps({**setup, "tree": str(tree), "predictions": predictions}))
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _write_history(path: Path, events: int, end: datetime) -> int:
    from shared.conflict.demo_data import DemoConfig, generate_sync_history, write_history_csv

    days = max(10, int(round(events / (USERS * EVENTS_PER_USER_PER_DAY))) + 1)
    config = replace(DemoConfig(), tenants=("bench",), users_per_tenant=USERS, entities_per_tenant=USERS * 8,
                     events_per_user_per_day=EVENTS_PER_USER_PER_DAY, days=days, end=end)
    return write_history_csv(generate_sync_history(config), path, limit=events)


def _split_csv(path: Path, sizes: list[int], work: Path) -> list[Path]:
    """The history's rows cut at each size: part k holds rows sizes[k-1]..sizes[k]."""
    parts, bounds = [], [0, *sizes]
    with path.open(newline="") as handle:
        header = handle.readline()
        for k in range(1, len(bounds)):
            part = work / f"part{k}.csv"
            with part.open("w", newline="") as out:
                out.write(header)
                for _ in range(bounds[k] - bounds[k - 1]):
                    line = handle.readline()
                    if not line:
                        break
                    out.write(line)
            parts.append(part)
    return parts


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _requests_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                     "client_last_sync_at"])
    for r in rows:
        writer.writerow([r["user_id"], r["domain"], r["entity_type"], r["entity_id"], ";".join(r["fields_changed"]),
                         r["received_at"].isoformat(), r["device_id"],
                         r["client_last_sync_at"].isoformat() if r["client_last_sync_at"] else ""])
    return out.getvalue()


def _previous_rows_per_s(context: Any, tenant: str, previous_sql: str, rows: list[dict[str, Any]]) -> float:
    payload = json.dumps([{"request_id": str(n), "tenant_id": tenant, "user_id": r["user_id"], "domain": r["domain"],
                           "entity_type": r["entity_type"], "entity_id": r["entity_id"],
                           "fields": r["fields_changed"], "as_of": r["received_at"].isoformat()}
                          for n, r in enumerate(rows)])
    started = time.perf_counter()
    with context.database.transaction() as tx:
        tx.fetch_all(previous_sql, requests=payload)
    return len(rows) / (time.perf_counter() - started)


def _score_csv(context: Any, tenant: str, requests: str, processes: int) -> tuple[io.StringIO, float]:
    from shared.conflict.scoring import score_conflict_csv

    fresh = type(context)(replace(context.settings, scoring_processes=processes))
    started = time.perf_counter()
    scored = io.StringIO()
    score_conflict_csv(fresh, tenant, io.StringIO(requests), scored)
    seconds = time.perf_counter() - started
    fresh.database.close()
    return scored, seconds


def _measure_size(context: Any, tenant: str, previous_sql: str, baseline_rows: int) -> dict[str, Any]:
    from shared.conflict.features_repository import training_rows
    from shared.conflict.training import train_candidate

    with context.database.transaction() as tx:
        stored = int(tx.fetch_value("SELECT count(*) FROM sync_events"))
        first, last = tx.fetch_all("SELECT min(received_at) AS a, max(received_at) AS b FROM sync_events")[0].values()
    context.database.run_outside_transaction("VACUUM ANALYZE sync_events")  # what autovacuum keeps up
    end = last + timedelta(microseconds=1)

    started = time.perf_counter()
    with context.database.transaction() as tx:
        columns, _ = training_rows(tx, tenant, first, end)
    feature_seconds = time.perf_counter() - started
    rows = len(columns["as_of"])

    newest = max(1, stored // 5)
    with context.database.transaction() as tx:
        recent = tx.fetch_all(
            "SELECT user_id, domain, entity_type, entity_id, fields_changed, received_at, device_id,"
            " client_last_sync_at, conflicted FROM sync_events ORDER BY received_at DESC, event_id DESC LIMIT :n", n=newest)
    recent.reverse()
    previous_features = _previous_rows_per_s(context, tenant, previous_sql, recent[-baseline_rows:])

    started = time.perf_counter()
    training = train_candidate(context, end=end, days_back=90)
    training_seconds = time.perf_counter() - started
    assert training.version is not None
    context.registry.activate(training.version.version_id, actor="bench")

    requests = _requests_csv(recent)
    # Split over the processes set (default min(2, cores)), then the same file in one process: its
    # speed beside, and the same bytes. Each in a fresh context (this one's serving cache may still
    # hold the version the previous code's round activated); both times include loading the model.
    processes = context.settings.scoring_processes
    scored, scoring_seconds = _score_csv(context, tenant, requests, processes)
    scored_alone, one_process_seconds = _score_csv(context, tenant, requests, 1)
    assert scored_alone.getvalue() == scored.getvalue(), "split scoring wrote other bytes than one process"
    return {
        "events": stored,
        "features": {"rows": rows, "seconds": round(feature_seconds, 3), "rows_per_s": round(rows / feature_seconds),
                     "us_per_row": round(feature_seconds / rows * 1e6, 2),
                     "previous_rows_per_s": round(previous_features), "previous_sample": min(baseline_rows, newest)},
        "batch_scoring": {"rows": newest, "seconds": round(scoring_seconds, 3),
                          "rows_per_s": round(newest / scoring_seconds),
                          "us_per_row": round(scoring_seconds / newest * 1e6, 2),
                          "processes": processes},
        "batch_scoring_one_process": {"rows": newest, "seconds": round(one_process_seconds, 3),
                                      "rows_per_s": round(newest / one_process_seconds), "same_output": True},
        "training": {"seconds": round(training_seconds, 2), "rows": training.manifest["rows"],
                     "basis": training.manifest["basis"], "holdout": training.metrics},
        "_scored": scored.getvalue(), "_recent": recent,
    }


def _plain_logistic_quality(context: Any, tenant: str, recent_count: int) -> dict[str, Any]:
    """The plain logistic regression on the five original features (log1p of counts and hours,
    standardised), trained and judged on the same split as the model."""
    from shared.conflict.features import FEATURE_NAMES
    from shared.conflict.features_repository import training_rows
    from shared.conflict.fitting import _fit_logistic
    from shared.platform.metrics import average_precision, brier_score, roc_auc

    with context.database.transaction() as tx:
        first, last = tx.fetch_all("SELECT min(received_at) AS a, max(received_at) AS b FROM sync_events")[0].values()
        columns, labels = training_rows(tx, tenant, first, last + timedelta(microseconds=1))
    five = FEATURE_NAMES[:5]
    x = np.column_stack([np.log1p(columns[n]) if n in ("concurrent_editors", "hours_since_last_sync",
                                                       "entity_edit_frequency") else columns[n] for n in five])
    cut = len(labels) - recent_count
    window = columns["as_of"][:cut] >= columns["as_of"][cut - 1] - 90 * 86400e6
    train_x, train_y = x[:cut][window], labels[:cut][window]
    means, scales = train_x.mean(axis=0), train_x.std(axis=0)
    scales[scales == 0] = 1

    def design(m: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(m)), (m - means) / scales])

    beta = _fit_logistic(design(train_x), train_y.astype(float), 1e-6)
    p = 1 / (1 + np.exp(-design(x[cut:]) @ beta))
    y = labels[cut:]
    return {"roc_auc": round(roc_auc(y, p) or 0, 4), "pr_auc": round(average_precision(y, p) or 0, 4),
            "brier": round(brier_score(y, p), 4)}


def _quality(scored_csv: str, recent: list[dict[str, Any]]) -> dict[str, Any]:
    from shared.platform.metrics import average_precision, brier_score, reliability_table, roc_auc

    p = np.array([float(r["probability"]) for r in csv.DictReader(io.StringIO(scored_csv))])
    y = np.array([bool(r["conflicted"]) for r in recent])
    return {"roc_auc": round(roc_auc(y, p) or 0, 4), "pr_auc": round(average_precision(y, p) or 0, 4),
            "brier": round(brier_score(y, p), 4), "reliability": reliability_table(y, p)}


def _predict_latencies(context: Any, tenant: str, previous_sql: str, predictions: int,
                       disk_probe_dir: Path) -> dict[str, Any]:
    from shared.conflict.kind import CONFLICT
    from shared.conflict.prediction import ConflictPredictionRequest, answer_conflict, predict_conflict
    from shared.conflict.services import conflict_services
    from shared.platform.serving import choose_serving

    with context.database.transaction() as tx:
        targets = tx.fetch_all(
            "SELECT user_id, domain, entity_type, entity_id, device_id, fields_changed, client_last_sync_at"
            " FROM sync_events ORDER BY received_at DESC LIMIT :n", n=predictions)
    requests = [ConflictPredictionRequest(user_id=t["user_id"], domain=t["domain"], entity_type=t["entity_type"],
                                          entity_id=t["entity_id"], fields=t["fields_changed"],
                                          device_id=t["device_id"], client_last_sync_at=t["client_last_sync_at"])
                for t in targets]
    predict_conflict(context, tenant, requests[0], "warm-up")  # loads and verifies the model once
    now_latencies = []
    for n, request in enumerate(requests):
        started = time.perf_counter()
        predict_conflict(context, tenant, request, f"bench-{n}")
        now_latencies.append((time.perf_counter() - started) * 1000)

    # The transaction path (what answers when a model has no SQL form): same code, no one-statement answers.
    in_transaction = replace(conflict_services(context), answers=None)
    answer_conflict(in_transaction, tenant, requests[0], "warm-up-tx")
    transaction_latencies = []
    for n, request in enumerate(requests):
        started = time.perf_counter()
        answer_conflict(in_transaction, tenant, request, f"tx-{n}")
        transaction_latencies.append((time.perf_counter() - started) * 1000)

    # The previous path: BEGIN, the LATERAL feature SQL, the model, the same log insert, COMMIT.
    services = conflict_services(context)
    previous_latencies = []
    for n, request in enumerate(requests):
        started = time.perf_counter()
        serving = choose_serving(CONFLICT, services.models, tenant, f"prev-{n}")
        now = datetime.now(UTC)
        payload = json.dumps([{"request_id": "q", "tenant_id": tenant, "user_id": request.user_id,
                               "domain": request.domain, "entity_type": request.entity_type,
                               "entity_id": request.entity_id, "fields": request.fields, "as_of": now.isoformat()}])
        with context.database.transaction() as tx:
            row = tx.fetch_all(previous_sql, requests=payload)[0]
            features = {name: float(row.get(name, 0.0) or 0.0) for name in CONFLICT.feature_names}
            probability = serving.probability(features)
            records = serving.records(tenant_id=tenant, request_id=f"prev-{n}", subject=request.model_dump(),
                                      features=features, probability=probability, predicted_at=now)
            services.log.append(tx, records)
        previous_latencies.append((time.perf_counter() - started) * 1000)

    # The floor under any logged answer: the cheapest durable commit (one prepared one-row INSERT,
    # its own transaction), and the disk's own fdatasync of an 8 KiB page beside the cluster.
    context.database.single_statement("CREATE TABLE IF NOT EXISTS bench_commit_probe (n integer)")
    commit_latencies = []
    for n in range(len(requests)):
        started = time.perf_counter()
        context.database.single_statement("INSERT INTO bench_commit_probe VALUES (:n)", n=n)
        commit_latencies.append((time.perf_counter() - started) * 1000)

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": round(statistics.median(values), 2), "p99": round(_percentile(values, 99), 2),
                "mean": round(statistics.fmean(values), 2)}

    return {"n": len(requests), "now": summary(now_latencies), "transaction_path": summary(transaction_latencies),
            "previous": summary(previous_latencies), "durable_commit_floor": summary(commit_latencies),
            "disk_fdatasync": summary(_fdatasync_latencies(disk_probe_dir, len(requests)))}


def _fdatasync_latencies(directory: Path, count: int) -> list[float]:
    """ms per fdatasync of an 8 KiB page rewritten in place: what every durable commit waits for."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    page, latencies = os.urandom(8192), []
    try:
        for n in range(count):
            os.pwrite(fd, page, (n % 16) * 8192)
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return latencies


def _best(rounds: list[Any]) -> dict[str, Any]:
    """Each measure's best round (least seconds), with every round's seconds beside it."""
    best = dict(rounds[-1])
    for section in ("features", "batch_scoring", "batch_scoring_one_process", "training"):
        if section not in best:
            continue  # the previous code's rounds measure no one-process scoring
        best[section] = {**min((r[section] for r in rounds), key=lambda m: m["seconds"]),
                         "seconds_each_round": [r[section]["seconds"] for r in rounds]}
    return best


def _median_latencies(rounds: list[Any]) -> dict[str, Any]:
    """Per path, the median over rounds of each round's p50, p99 and mean."""
    paths = [name for name, value in rounds[0].items() if isinstance(value, dict)]
    result: dict[str, Any] = {"n": rounds[0]["n"], "rounds": len(rounds)}
    for path in paths:
        result[path] = {stat: round(statistics.median(r[path][stat] for r in rounds), 2) for stat in ("p50", "p99", "mean")}
        result[path]["p99_each_round"] = [r[path]["p99"] for r in rounds]
    return result


def _bench_database(work: Path) -> tuple[Any, str, str, str]:
    """A PostgreSQL of its own under `work`, migrated, with one tenant: (context, url, key, tenant)."""
    from shared.adapters.migrate import migrate
    from shared.context import AppContext
    from shared.settings import Settings

    url = localpg.start(work / "pg", localpg.free_port(), fast=False)
    key = secrets.token_hex(32)
    context = AppContext(Settings(database_url=url, object_store_url=f"file://{work / 'objects'}", signing_key=key))
    migrate(context.database)
    return context, url, key, context.tenants.create_tenant("bench", "Bench").tenant_id


def run(events: int, predictions: int, baseline_rows: int, work: Path, baseline_ref: str,
        repeat: int = 3) -> dict[str, Any]:
    from shared.conflict.ingest import ingest_sync_events

    previous_sql = _previous_sql()
    tree = _export(baseline_ref, work) if baseline_ref else None
    context, url, key, tenant = _bench_database(work)
    setup = {"url": url, "objects": f"file://{work / 'objects'}", "key": key, "tenant": tenant,
             "previous_sql": previous_sql, "rows": baseline_rows}
    history = work / "history.csv"
    started = time.perf_counter()
    total = _write_history(history, events, datetime.now(UTC))
    generate_seconds = time.perf_counter() - started
    sizes = [s for s in SIZES if s < total] + [total]
    report: dict[str, Any] = {"events": total, "generate_seconds": round(generate_seconds, 1), "sizes": []}
    ingest_rows = ingest_seconds = 0.0
    last: dict[str, Any] = {}
    codes = {**({"baseline": tree} if tree is not None else {}), "now": ROOT}
    command = _Command(url, f"file://{work / 'objects'}", key, work / "requests.csv")
    for part in _split_csv(history, sizes, work):
        started = time.perf_counter()
        ingest_rows += ingest_sync_events(context, tenant, part)["stored"]
        ingest_seconds += time.perf_counter() - started
        # One round of each code first, not counted: the first round after an ingest is cold (the
        # table's pages not yet in PostgreSQL's buffers, the process's first touch of arrays that
        # size: 6.4 s at 1M against 3.3-4.1 for the next rounds). It writes the request file the
        # command reads and the command's bytecode too.
        _baseline(tree, setup)
        warm = _measure_size(context, tenant, previous_sql, baseline_rows)
        command.requests.write_text(_requests_csv(warm["_recent"]), newline="")
        for code, code_tree in codes.items():
            command.seconds(code_tree, work / f"cli.{code}")
        # Rounds alternate the previous code and this one; the best round of each counts (a shared
        # machine slows single runs at random). The previous code goes first in each round, so
        # this run's own model is the one left active, which both codes' commands then score with.
        befores, rounds = [], []
        cli: dict[str, list[float]] = {code: [] for code in codes}
        loads = []
        for _ in range(repeat):
            loads.append(os.getloadavg()[0])
            befores.append(_baseline(tree, setup))
            rounds.append(_measure_size(context, tenant, previous_sql, baseline_rows))
            for code, code_tree in codes.items():
                cli[code].append(command.seconds(code_tree, work / f"cli.{code}"))
            assert (work / "cli.now").read_bytes() == rounds[-1]["_scored"].encode(), \
                "the command wrote other bytes than the function"
        last = _best(rounds)
        same = tree is not None and (work / "cli.baseline").read_bytes() == (work / "cli.now").read_bytes()
        report["sizes"].append({**{k: v for k, v in last.items() if not k.startswith("_")},
                                "cli": _summary(last["batch_scoring"]["rows"], cli["now"]),
                                "load_average_each_round": loads,
                                "baseline": ({**_best(befores),
                                              "cli": {**_summary(last["batch_scoring"]["rows"], cli["baseline"]),
                                                      "same_bytes_as_this_code": same}}
                                             if tree is not None else None)})
        print(json.dumps(report["sizes"][-1]), file=sys.stderr)
    report["ingest"] = {"rows": int(ingest_rows), "rows_per_s": round(ingest_rows / ingest_seconds)}
    first_cost = report["sizes"][0]["features"]["us_per_row"]
    report["features_cost_ratio_largest_vs_100k"] = round(report["sizes"][-1]["features"]["us_per_row"] / first_cost, 2)
    report["scoring_cost_ratio_largest_vs_100k"] = round(
        report["sizes"][-1]["batch_scoring"]["us_per_row"] / report["sizes"][0]["batch_scoring"]["us_per_row"], 2)
    predict_rounds, predict_befores = [], []
    for _ in range(repeat):
        predict_rounds.append(_predict_latencies(context, tenant, previous_sql, predictions, work))
        predict_befores.append(_baseline(tree, setup, predictions=predictions))
    report["predict_warm_ms"] = _median_latencies(predict_rounds)
    report["predict_warm_ms"]["baseline"] = _median_latencies(predict_befores) if tree is not None else None
    report["repeat"] = repeat
    report["baseline_ref"] = baseline_ref or None
    report["quality_on_demo_holdout"] = {
        "rows": len(last["_recent"]),
        "model": _quality(last["_scored"], last["_recent"]),
        "plain_logistic_five_features": _plain_logistic_quality(context, tenant, len(last["_recent"])),
    }
    context.database.close()
    localpg.stop(work / "pg")
    return report


def run_case(events: int, rows: int, work: Path, baseline_ref: str, repeat: int) -> dict[str, Any]:
    """Batch scoring alone: `rows` requests (the newest stored events) against `events` stored
    events, this code beside the previous one's, alternating, best of `repeat` rounds."""
    from shared.conflict.ingest import ingest_sync_events
    from shared.conflict.training import train_candidate

    tree = _export(baseline_ref, work) if baseline_ref else None
    context, url, key, tenant = _bench_database(work)
    history = work / "history.csv"
    stored = _write_history(history, events, datetime.now(UTC))
    ingest_sync_events(context, tenant, history)
    context.database.run_outside_transaction("VACUUM ANALYZE sync_events")
    with context.database.transaction() as tx:
        last = tx.fetch_value("SELECT max(received_at) FROM sync_events")
        recent = tx.fetch_all(
            "SELECT user_id, domain, entity_type, entity_id, fields_changed, received_at, device_id,"
            " client_last_sync_at FROM sync_events ORDER BY received_at DESC, event_id DESC LIMIT :n", n=rows)
    recent.reverse()
    training = train_candidate(context, end=last + timedelta(microseconds=1), days_back=90)
    # No autovacuum worker during the rounds: its CPU would count as the command's server CPU.
    context.database.run_outside_transaction("ALTER SYSTEM SET autovacuum = off")
    context.database.run_outside_transaction("SELECT pg_reload_conf()")
    assert training.version is not None
    context.registry.activate(training.version.version_id, actor="bench")
    requests = _requests_csv(recent)
    (work / "requests.csv").write_text(requests, newline="")
    processes = context.settings.scoring_processes
    setup = {"url": url, "objects": f"file://{work / 'objects'}", "key": key, "tenant": tenant,
             "requests": str(work / "requests.csv"), "processes": processes}
    context.database.close()
    codes = {**({"baseline": tree} if tree is not None else {}), "now": ROOT}
    command = _Command(url, f"file://{work / 'objects'}", key, work / "requests.csv", work / "pg")
    seconds: dict[str, dict[str, list[float]]] = {code: {"split": [], "one_process": []} for code in codes}
    cli: dict[str, list[float]] = {code: [] for code in codes}
    cli_default: dict[str, list[float]] = {code: [] for code in codes}
    cpu: dict[str, dict[str, list[tuple[float, float]]]] = {code: {"cli": [], "cli_default": []} for code in codes}
    loads = []
    # One round of each code first, not counted (the first round after the ingest is cold; it
    # writes the command's bytecode too); then each round times each code's function (split and
    # one process, in a fresh child) and then its command (in one process, and with the user's
    # default processes), the previous code first.
    for round_number in range(repeat + 1):
        if round_number:
            loads.append(os.getloadavg()[0])
        for code, code_tree in codes.items():
            done = subprocess.run([sys.executable, "-c", _BASELINE_SCORING_CHILD], cwd=code_tree, check=True,
                                  capture_output=True, text=True,
                                  input=json.dumps({**setup, "tree": str(code_tree), "output": str(work / code)}))
            cli_seconds = command.seconds(code_tree, work / f"cli.{code}")
            cli_cpu = command.last_cpu
            default_seconds = command.seconds(code_tree, work / f"cli_default.{code}", processes=None)
            if round_number:
                cpu[code]["cli"].append(cli_cpu)
                cpu[code]["cli_default"].append(command.last_cpu)
                for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    seconds[code][name].append(value)
                cli[code].append(cli_seconds)
                cli_default[code].append(default_seconds)
        outputs = set()
        for code, name in itertools.product(codes, ("split", "one_process")):
            with (work / f"{code}.{name}").open(newline="") as handle:
                outputs.add(handle.read())
        assert len(outputs) == 1, "the outputs differ (split against one process, or this code against the previous)"
        for code, output in itertools.product(codes, ("cli", "cli_default")):
            assert (work / f"{output}.{code}").read_bytes() == (work / "now.one_process").read_bytes(), \
                f"the command ({code}, {output}) wrote other bytes than the function"
    localpg.stop(work / "pg")

    return {"case": {"events": stored, "rows": len(recent)}, "processes": processes, "repeat": repeat,
            "baseline_ref": baseline_ref or None, "load_average_each_round": loads, "same_bytes": True,
            "now": {**{name: _summary(rows, values) for name, values in seconds["now"].items()},
                    "cli": _summary(rows, cli["now"], cpu["now"]["cli"]),
                    "cli_default": _summary(rows, cli_default["now"], cpu["now"]["cli_default"])},
            "baseline": ({**{name: _summary(rows, values) for name, values in seconds["baseline"].items()},
                          "cli": _summary(rows, cli["baseline"], cpu["baseline"]["cli"]),
                          "cli_default": _summary(rows, cli_default["baseline"], cpu["baseline"]["cli_default"])}
                         if tree is not None else None)}


class _Command:
    """The request file as a user times it: `mlstack score conflict` in a fresh interpreter (its
    start, imports, settings, tenant lookup and the output file included), one process, from the
    tree of the code given (`python -m shared.cli` there). Python writes and reuses bytecode as an
    installed package has it (PYTHONDONTWRITEBYTECODE, if set here, would make every run compile
    the project's modules again); the untimed warm-up round writes it first."""

    def __init__(self, url: str, objects: str, key: str, requests: Path, data: Path | None = None) -> None:
        self.requests, self.data = requests, data
        self.last_cpu: tuple[float, float] = (0.0, 0.0)  # the last run's CPU seconds: the command's, the server's
        self.env = {**os.environ, "MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": objects,
                    "MLSTACK_SIGNING_KEY": key}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.pop("MLSTACK_SCORING_PROCESSES", None)

    def seconds(self, tree: Path, output: Path, processes: int | None = 1) -> float:
        """One process by default; `processes=None` leaves MLSTACK_SCORING_PROCESSES unset, as a
        user runs it (min(2, cores): a file of 40,000 lines or more is split)."""
        env = self.env if processes is None else {**self.env, "MLSTACK_SCORING_PROCESSES": str(processes)}
        client, server = _children_cpu(), self._server_cpu()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "shared.cli", "score", "conflict", "--tenant", "bench",
                        "--input", str(self.requests), "--output", str(output)],
                       cwd=tree, env=env, check=True, capture_output=True)
        seconds = round(time.perf_counter() - started, 3)
        # The postmaster reaps the session's backend a moment after the command hangs up: wait
        # for its count to settle (the next run must not get this one's).
        settled, after = server, self._server_cpu()
        for _ in range(20):
            if after == settled and after > server:
                break
            time.sleep(0.05)
            settled, after = after, self._server_cpu()
        self.last_cpu = (round(_children_cpu() - client, 3), round(after - server, 3))
        return seconds

    def _server_cpu(self) -> float:
        """User + system CPU seconds of the server processes its postmaster has reaped (each
        backend, when its client disconnects, and each parallel worker): the command's session
        is counted once it has ended. 0 without a data folder."""
        if self.data is None:
            return 0.0
        pid = int((self.data / "cluster" / "postmaster.pid").read_text().split()[0])  # localpg keeps the cluster there
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def _children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _summary(rows: int, seconds: list[float], cpu: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Rows per second of the best round, the best and median seconds, every round's; with the
    command's runs, the CPU seconds they used (the command's processes, PostgreSQL's), least and
    median, against the goal's budget: two cores for as long as the goal's wall time."""
    summary = {"rows_per_s": round(rows / min(seconds)), "seconds_best": round(min(seconds), 3),
               "seconds_median": round(statistics.median(seconds), 3),
               "seconds_each_round": [round(x, 3) for x in seconds]}
    if cpu:
        totals = [client + server for client, server in cpu]
        least = cpu[totals.index(min(totals))]  # both parts from the same run
        summary |= {"cpu_seconds_least": round(min(totals), 3), "cpu_seconds_median": round(statistics.median(totals), 3),
                    "cpu_command_seconds_least": least[0], "cpu_server_seconds_least": least[1],
                    "cpu_budget_of_goal_seconds": round(2 * rows / GOAL_ROWS_PER_S, 3),
                    "cpu_each_round": [list(pair) for pair in cpu]}
    return summary


def case_table(report: dict[str, Any]) -> str:
    case, now, before = report["case"], report["now"], report["baseline"] or {}
    lines = [f"batch scoring, {case['rows']:,} requests against {case['events']:,} stored events; rows/s of the best"
             f" of {report['repeat']} rounds (seconds: best / median); load average at each round"
             f" {report['load_average_each_round']}",
             f"{'':>24}{'split over ' + str(report['processes']):>26}{'one process':>26}"
             f"{'mlstack score conflict':>30}{'(default processes)':>30}",
             "-" * 136]
    for name, code in (("this code", now), (f"before ({report['baseline_ref']})", before)):
        if code:
            lines.append(f"{name:>24}" + "".join(
                f"{f'{m['rows_per_s']:,} ({m['seconds_best']} / {m['seconds_median']})':>{width}}"
                for m, width in ((code["split"], 26), (code["one_process"], 26), (code["cli"], 30),
                                 (code["cli_default"], 30))))
    for name, code in (("this code", now), (f"before ({report['baseline_ref']})", before)):
        if code and "cpu_seconds_least" in code["cli"]:
            lines.append(f"{name}: the command's CPU seconds (its processes + PostgreSQL's), least / median: one process "
                         + "; default processes ".join(
                             f"{m['cpu_seconds_least']} ({m['cpu_command_seconds_least']} + {m['cpu_server_seconds_least']})"
                             f" / {m['cpu_seconds_median']}" for m in (code["cli"], code["cli_default"]))
                         + f"; the goal's budget on 2 cores {code['cli']['cpu_budget_of_goal_seconds']}")
    return "\n".join(lines)


def table(report: dict[str, Any]) -> str:
    def previous(size: dict[str, Any], *path: str) -> str:
        value: Any = size.get("baseline")
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return "-" if value is None else f"{value:,}"

    lines = [f"best of {report['repeat']} rounds after a warm-up round (predict: median over rounds)",
             f"{'events':>10}{'features rows/s':>17}{'(before)':>10}{'(LATERAL)':>10}{'scoring rows/s':>16}"
             f"{'(1 proc)':>10}{'(before)':>10}{'CLI rows/s':>12}{'(before)':>10}{'training s':>12}{'(before)':>10}",
             "-" * 127]
    for size in report["sizes"]:
        f, s = size["features"], size["batch_scoring"]
        lines.append(f"{size['events']:>10,}{f['rows_per_s']:>17,}{previous(size, 'features', 'rows_per_s'):>10}"
                     f"{f['previous_rows_per_s']:>10,}{s['rows_per_s']:>16,}"
                     f"{size['batch_scoring_one_process']['rows_per_s']:>10,}"
                     f"{previous(size, 'batch_scoring', 'rows_per_s'):>10}{size['cli']['rows_per_s']:>12,}"
                     f"{previous(size, 'cli', 'rows_per_s'):>10}{size['training']['seconds']:>12}"
                     f"{previous(size, 'training', 'seconds'):>10}")
    p = report["predict_warm_ms"]
    q = report["quality_on_demo_holdout"]
    before = p.get("baseline") or {}
    lines += [
        "",
        f"per-row cost, largest / 100k: features {report['features_cost_ratio_largest_vs_100k']}x,"
        f" batch scoring {report['scoring_cost_ratio_largest_vs_100k']}x",
        f"warm predict p50/p99 ms: one statement {p['now']['p50']} / {p['now']['p99']};"
        f" transaction path {p['transaction_path']['p50']} / {p['transaction_path']['p99']};"
        f" LATERAL path {p['previous']['p50']} / {p['previous']['p99']}"
        + (f"; before ({report['baseline_ref']}) {before['now']['p50']} / {before['now']['p99']}" if before else ""),
        f"floor, same rounds: a one-row durable commit {p['durable_commit_floor']['p50']} /"
        f" {p['durable_commit_floor']['p99']}; the disk's fdatasync {p['disk_fdatasync']['p50']} /"
        f" {p['disk_fdatasync']['p99']}",
        f"demo hold-out ({q['rows']:,} rows) ROC-AUC / PR-AUC / Brier: model {q['model']['roc_auc']} /"
        f" {q['model']['pr_auc']} / {q['model']['brier']};  plain logistic on the five:"
        f" {q['plain_logistic_five_features']['roc_auc']} / {q['plain_logistic_five_features']['pr_auc']} /"
        f" {q['plain_logistic_five_features']['brier']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--predictions", type=int, default=500)
    parser.add_argument("--baseline-rows", type=int, default=2000)
    parser.add_argument("--baseline-ref", default=PREVIOUS_CODE_REF,
                        help="the previous code, measured beside this one ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size; the best round of each measure counts")
    parser.add_argument("--case", help="EVENTS:ROWS: batch scoring alone, ROWS requests against EVENTS stored events")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-"))
    try:
        if args.case:
            events, rows = (int(part) for part in args.case.split(":"))
            report = run_case(events, rows, work, args.baseline_ref, args.repeat)
        else:
            report = run(args.events, args.predictions, args.baseline_rows, work, args.baseline_ref, args.repeat)
    finally:
        localpg.stop(work / "pg")
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    print()
    print(case_table(report) if args.case else table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
