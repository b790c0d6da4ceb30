"""The mlstack CLI against real services: bulk import, training, scoring, registry commands."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.conflict.demo_data import CSV_COLUMNS, DemoConfig, generate_sync_history, write_history_csv
from shared.context import AppContext

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def mlstack(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **settings_env})


def write_history(path: Path, rows: int = 3000) -> None:
    config = replace(DemoConfig(), tenants=("acme",), end=datetime.now(UTC))
    write_history_csv(generate_sync_history(config), path, limit=rows)


def count_events(context: AppContext) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM sync_events"))


def test_every_command_has_help() -> None:
    from shared.cli import build_parser

    parser = build_parser()
    groups = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    paths = []
    for name, sub in groups.items():
        actions = [a for a in sub._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
        paths += [[name, action] for a in actions for action in a.choices] or [[name]]
    # Each command's help in process (a process each took a minute in all); the module's own entry
    # point once, as a user runs it.
    for path in paths:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            build_parser().parse_args([*path, "--help"])
        assert exited.value.code == 0 and "usage: mlstack" in out.getvalue(), path
    result = subprocess.run([sys.executable, "-m", "shared.cli", "train", "conflict", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "usage: mlstack train conflict" in result.stdout
    assert ["ingest", "sync-events"] in paths and ["train", "conflict"] in paths and ["score", "conflict"] in paths


def _commands(parser: Any) -> dict[tuple[str, str], Any]:
    """Every (group, action) subparser of a parser."""
    groups = parser._subparsers._group_actions[0].choices
    return {(name, action): sub_parser for name, sub in groups.items()
            for a in sub._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
            for action, sub_parser in a.choices.items()}


def test_a_command_of_one_slice_gets_its_own_parser_from_that_slice_alone() -> None:
    from shared.cli import ONE_SLICE_COMMANDS, build_parser, parser_for
    from shared.slices import SLICES

    full = _commands(build_parser())
    # The list names every command of its slices, each with the module that adds it.
    listed = set(ONE_SLICE_COMMANDS.values())
    for loop in SLICES:
        if loop.cli is not None and loop.cli.__module__ in listed:
            added = set(_commands(build_parser([loop])).keys() - _commands(build_parser([])).keys())
            assert added == {c for c, module in ONE_SLICE_COMMANDS.items() if module == loop.cli.__module__}
    for command in ONE_SLICE_COMMANDS:
        for line in ([*command], ["--env-file", "x.env", *command], ["--env-file=x.env", *command]):
            own = _commands(parser_for([*line, "--help"]))[command]
            assert own.format_help() == full[command].format_help(), command
            handlers = own.get_default("handler"), full[command].get_default("handler")
            assert len({(h.__module__, h.__qualname__) for h in handlers}) == 1, command  # some are closures
    script = ("import sys; from shared.cli import parser_for; parser_for(['score', 'conflict', '--help']); "
              "print(sorted(m for m in sys.modules if m.startswith(('shared.slices', 'shared.fraud', 'shared.ocr', "
              "'shared.monitoring'))))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_batch_scoring_loads_numpy_with_one_blas_thread_and_other_commands_as_configured() -> None:
    # In a fresh interpreter, as `mlstack` runs: the setting must be in place before numpy loads.
    script = ("import contextlib, os, sys; from shared.cli import run\n"
              "sys.argv = ['mlstack', *sys.argv[1:]]\n"
              "with contextlib.suppress(SystemExit): run()\n"
              "print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)")

    def blas_threads(*argv: str, **env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        return subprocess.run([sys.executable, "-c", script, *argv, "--help"], cwd=ROOT, capture_output=True,
                              text=True, env={**base, **env}).stdout.splitlines()[-1]

    assert blas_threads("score", "conflict") == "1 True"
    assert blas_threads("--env-file", "x.env", "score", "conflict") == "1 True"
    assert blas_threads("score", "conflict", OPENBLAS_NUM_THREADS="2") == "2 True"  # the operator's choice wins
    assert blas_threads("train", "conflict") == "None True"  # training multiplies matrices


def test_the_command_runs_with_the_collector_on_after_its_imports_were_left_uncollected() -> None:
    # `mlstack` (run) reads the command line with the collector off; the command itself, which may
    # run for hours (the local schedule), must run with it on.
    script = ("import gc, sys; import shared.cli as cli\n"
              "cli._ran = lambda args: print(gc.isenabled(), gc.get_freeze_count() > 0, 'numpy' in sys.modules) or 0\n"
              "sys.argv = ['mlstack', 'score', 'conflict', '--tenant', 't', '--input', 'a', '--output', 'b']\n"
              "cli.run()")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["True", "True", "True"], result.stderr


def test_main_in_process_leaves_the_callers_blas_setting_alone() -> None:
    # The one-thread setting is the `mlstack` process's (run), not a caller's of main.
    script = ("import contextlib, os, sys; from shared.cli import main\n"
              "with contextlib.suppress(SystemExit): main(['score', 'conflict', '--help'])\n"
              "print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.stdout.splitlines()[-1] == "None", result.stderr


# A file left open with its text in its buffer: the interpreter's exit flushes it, the lean end does not.
_END_SCRIPT = ("import atexit, os, sys; import shared.cli as cli\n"
               "left_open = open(os.environ['LEFT_OPEN'], 'w'); left_open.write('flushed')\n"
               "atexit.register(print, 'atexit ran')\n"
               "sys.argv = ['mlstack', *sys.argv[1:]]\n"
               "cli.run()")


def _ended(tmp_path: Path, *argv: str, script: str = _END_SCRIPT) -> tuple[subprocess.CompletedProcess[str], str]:
    """The run, and what its file left open holds after the process ended."""
    left_open = tmp_path / "left-open.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")} | {"LEFT_OPEN": str(left_open)}
    result = subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True, env=env)
    return result, left_open.read_text()


# The input exists (a missing one is refused before the settings are read), the settings do not.
_SCORE = ("score", "conflict", "--tenant", "t", "--input", "README.md", "--output", "b")


def test_a_lean_command_ends_its_process_after_the_atexit_handlers_without_the_interpreters_teardown(
        tmp_path: Path) -> None:
    refused, left_open = _ended(tmp_path, *_SCORE)
    assert refused.returncode == 2 and refused.stderr.startswith("error: invalid settings: MLSTACK_")
    assert refused.stdout == "atexit ran\n"
    assert left_open == ""  # no teardown: the process ended at once


def test_other_commands_and_a_lean_one_with_a_thread_left_end_through_the_interpreters_exit(tmp_path: Path) -> None:
    listed, left_open = _ended(tmp_path, "jobs")  # not lean
    assert listed.returncode == 0 and listed.stdout.rstrip().endswith("]\natexit ran"), listed.stderr
    assert json.loads(listed.stdout.rstrip().removesuffix("atexit ran")) and left_open == "flushed"
    with_thread = _END_SCRIPT.replace("cli.run()", (
        "import threading, time\n"
        "cli._ran = lambda args: threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start() or 0\n"
        "cli.run()"))
    late, left_open = _ended(tmp_path, *_SCORE, script=with_thread)
    assert late.returncode == 0 and late.stdout == "thread done\natexit ran\n" and left_open == "flushed", late


def test_bulk_import_reports_the_bad_line_and_stores_nothing(
    context: AppContext, settings_env: dict[str, str], tmp_path: Path
) -> None:
    context.tenants.create_tenant("acme", "Acme")
    history = tmp_path / "history.csv"
    write_history(history, rows=500)
    lines = history.read_text().splitlines()
    lines[321] = lines[321].replace(",voice,", ",Voice Memos,", 1).replace(",facilities,", ",Facilities!,", 1)
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")
    result = mlstack(settings_env, "ingest", "sync-events", str(broken), "--tenant", "acme", "--quiet")
    assert result.returncode == 2
    assert "line 322" in result.stderr and "domain" in result.stderr
    assert count_events(context) == 0


def test_bulk_import_then_train_then_score(context: AppContext, settings_env: dict[str, str], tmp_path: Path) -> None:
    context.tenants.create_tenant("acme", "Acme")
    history = tmp_path / "history.csv"
    write_history(history, rows=6000)
    first = mlstack(settings_env, "ingest", "sync-events", str(history), "--tenant", "acme", "--quiet")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"rows": 6000, "stored": 6000, "already_present": 0}
    again = mlstack(settings_env, "ingest", "sync-events", str(history), "--tenant", "acme", "--quiet")
    assert json.loads(again.stdout) == {"rows": 6000, "stored": 0, "already_present": 6000}
    assert count_events(context) == 6000

    trained = mlstack(settings_env, "train", "conflict", "--days-back", "90", "--activate")
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["status"] == "active" and report["metrics"]["roc_auc"] > 0.6 and "brier" in report["metrics"]
    assert len(report["reliability"]) == 10 and report["basis"] in ("plain", "indicators", "interactions", "hinges")

    requests = tmp_path / "requests.csv"
    requests.write_text("user_id,domain,entity_type,entity_id,fields,as_of\n"
                        "acme-user-001,voice,recording,rec-00001,notes;title,\n"
                        "acme-user-002,voice,recording,rec-00002,,2026-11-01T00:00:00+00:00\n")
    scored_path = tmp_path / "scored.csv"
    scored = mlstack(settings_env, "score", "conflict", "--tenant", "acme", "--input", str(requests),
                     "--output", str(scored_path))
    assert scored.returncode == 0, scored.stderr
    rows = list(csv.DictReader(scored_path.open()))
    assert [r["user_id"] for r in rows] == ["acme-user-001", "acme-user-002"]
    assert all(0 <= float(r["probability"]) <= 1 and r["model_version"] == report["label"] for r in rows)

    listed = json.loads(mlstack(settings_env, "models", "list").stdout)
    assert [m["status"] for m in listed] == ["active"]
    rollback = mlstack(settings_env, "models", "rollback", "conflict")
    assert rollback.returncode == 2 and "nothing to roll back" in rollback.stderr

    # A challenger's share serves from the serving processes' next registry read, which the output says.
    candidate = json.loads(mlstack(settings_env, "train", "conflict", "--days-back", "90").stdout)["version_id"]
    refresh = {**settings_env, "MLSTACK_MODEL_REFRESH_SECONDS": "60"}
    challenger = mlstack(refresh, "models", "challenger", candidate, "--share", "0.2")
    assert challenger.returncode == 0, challenger.stderr
    shown = json.loads(challenger.stdout)
    assert shown["challenger_share"] == 0.2 and "within 60 s" in shown["takes_effect"]
    assert "MLSTACK_MODEL_REFRESH_SECONDS" in shown["takes_effect"]
    shadow = json.loads(mlstack(settings_env, "train", "conflict", "--days-back", "90").stdout)["version_id"]
    assert mlstack(settings_env, "models", "shadow", shadow).returncode == 0
    roles = {m["version_id"]: (m["role"], m["shadow"]) for m in json.loads(mlstack(settings_env, "models", "list").stdout)}
    assert roles[candidate] == ("challenger", False) and roles[shadow] == ("shadow", True)


def test_bulk_import_refuses_a_changed_known_event_and_stores_none_of_the_file(
    context: AppContext, settings_env: dict[str, str], tmp_path: Path
) -> None:
    context.tenants.create_tenant("acme", "Acme")
    history = tmp_path / "history.csv"
    write_history(history, rows=200)
    assert mlstack(settings_env, "ingest", "sync-events", str(history), "--tenant", "acme", "--quiet").returncode == 0
    rows = list(csv.DictReader(history.open()))
    changed = {**rows[10], "fields_changed": "tags"}
    fresh = {**rows[11], "client_event_id": "brand-new-1"}
    second = tmp_path / "second.csv"
    with second.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows([fresh, changed])
    result = mlstack(settings_env, "ingest", "sync-events", str(second), "--tenant", "acme", "--quiet")
    assert result.returncode == 2 and rows[10]["client_event_id"] in result.stderr
    assert count_events(context) == 200  # brand-new-1 was not stored either


def test_an_unreadable_file_is_refused_cleanly(context: AppContext, settings_env: dict[str, str], tmp_path: Path) -> None:
    context.tenants.create_tenant("acme", "Acme")
    history = tmp_path / "history.csv"
    write_history(history, rows=50)
    history.write_bytes(history.read_bytes() + b"\xff\xfe not utf-8\n")
    result = mlstack(settings_env, "ingest", "sync-events", str(history), "--tenant", "acme", "--quiet")
    # Reported on its own line (the rows before it are fine), and nothing is stored.
    assert result.returncode == 2 and "line 52: not valid UTF-8 text" in result.stderr
    assert count_events(context) == 0


def test_creating_a_tenant_that_exists_says_so_without_the_databases_text(
        context: AppContext, settings_env: dict[str, str]) -> None:
    assert mlstack(settings_env, "tenants", "create", "acme").returncode == 0
    again = mlstack(settings_env, "tenants", "create", "acme")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == "error: tenant 'acme' already exists (see `mlstack tenants list`)\n"


def test_the_import_draws_its_full_progress_bar_once(
        context: AppContext, settings_env: dict[str, str], tmp_path: Path) -> None:
    context.tenants.create_tenant("acme", "Acme")
    history = tmp_path / "history.csv"
    write_history(history, rows=6000)  # three chunks: updates, then the last one
    result = subprocess.run([sys.executable, "-m", "shared.cli", "ingest", "sync-events", str(history),
                             "--tenant", "acme"], cwd=ROOT, capture_output=True,
                            # tqdm draws every update (its defaults skip some, depending on timing)
                            env={**os.environ, **settings_env, "TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"})
    assert result.returncode == 0, result.stderr
    bar = result.stderr.decode()
    assert bar.count("6000/6000") == 1 and bar.count("100%|") == 1, repr(bar)
    assert "2000/6000" in bar  # the bar still moves while the import runs


def test_a_file_in_another_encoding_or_nested_too_deeply_is_one_error_line_and_stores_nothing(
    context: AppContext, settings_env: dict[str, str], tmp_path: Path
) -> None:
    """What a probe found ending in a traceback (exit 1): a Latin-1 or UTF-16 file, a JSON line of
    100,000 nested brackets. Each command says what is wrong in one `error:` line, exit 2."""
    context.tenants.create_tenant("acme", "Acme")
    latin1, utf16, deep = tmp_path / "latin1.csv", tmp_path / "utf16.csv", tmp_path / "deep.ndjson"
    latin1.write_bytes("client_reading_id,source_id\nr-1,compteur-é\n".encode("latin-1"))
    utf16.write_bytes("client_reading_id,source_id\nr-1,m\n".encode("utf-16"))
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    out = str(tmp_path / "out.csv")
    commands = [*(cmd for path in (latin1, utf16) for cmd in (
        ("score", "conflict", "--tenant", "acme", "--input", str(path), "--output", out),
        ("ocr", "triage", "--tenant", "acme", "--input", str(path), "--output", out),
        ("ingest", "ocr-readings", "--tenant", "acme", str(path)),
        ("ingest", "corrections", "--tenant", "acme", str(path)),
        ("anomaly", "backtest", "--input", str(path), "--output", out))),
        ("ingest", "ocr-readings", "--tenant", "acme", str(deep)),
        ("ingest", "attendance", str(deep), "--tenant", "acme"),
        ("ocr", "triage", "--tenant", "acme", "--input", str(deep), "--output", out),
        ("score", "fraud", "--tenant", "acme", "--input", str(deep), "--output", out)]
    for command in commands:
        result = mlstack(settings_env, *command)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (command, result.stderr[-600:])
        assert result.stderr.startswith("error:"), (command, result.stderr)
    assert not (tmp_path / "out.csv").exists()
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_readings") == 0
        assert tx.fetch_value("SELECT count(*) FROM attendance_events") == 0


def test_a_bad_tenant_name_or_schedule_job_is_one_error_line(context: AppContext, settings_env: dict[str, str]) -> None:
    """A name past the column's 200 characters came back as the database's traceback; a job the
    schedule does not run ended with exit 1. Both are one `error:` line, exit 2, nothing created."""
    for command in (("tenants", "create", "long-name", "--name", "x" * 300), ("schedule", "--job", "bogus", "--rounds", "1"),
                    ("schedule", "--job", "retrain-ocr", "--rounds", "1")):
        result = mlstack(settings_env, *command)
        assert result.returncode == 2 and result.stderr.startswith("error:"), (command, result.stderr[-400:])
    assert "scan-metrics" in result.stderr  # the jobs it does run are named
    assert [t.slug for t in context.tenants.list_tenants()] == []
