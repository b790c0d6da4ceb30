"""The sync-conflict loop as one slice: its kind, scheduled jobs, CLI commands and routes."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.conflict.kind import CONFLICT
from shared.context import AppContext, get_context
from shared.platform.cli_args import check_batch_files, days
from shared.platform.jobs import CliGroups, Job, Slice, add_batch_files, add_candidate_flags


def _track_outcomes(context: AppContext) -> dict[str, Any]:
    from shared.conflict.outcomes import track_conflict_outcomes

    return track_conflict_outcomes(context)


def _retrain(context: AppContext) -> dict[str, Any]:
    # Imported here: retraining imports scikit-learn, which the other handlers never need.
    from shared.conflict.retraining import retrain_all_conflict_models

    return retrain_all_conflict_models(context)


def _retrain_scope(context: AppContext, tenant_id: str | None) -> dict[str, Any]:
    """One scope's job from the training queue (the fan-out above queues one per scope)."""
    from shared.conflict.retraining import retrain_conflict_model

    return retrain_conflict_model(context, tenant_id=tenant_id)


# -- CLI ----------------------------------------------------------------------------------------


def _line_count(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:  # bytes: a decoding error is the import's to report
            return sum(1 for _ in handle)
    except OSError:
        return None  # the import reports a missing or unreadable file


def cmd_ingest_sync_events(args: argparse.Namespace) -> Any:
    from tqdm import tqdm

    from shared.conflict.ingest import ingest_sync_events

    context = get_context()
    tenant_id = context.tenants.find_tenant(args.tenant).tenant_id
    lines = _line_count(args.file)
    header = 0 if args.file.suffix in (".ndjson", ".jsonl") else 1
    total = lines - header if lines is not None else None
    with tqdm(total=total, unit="rows", file=sys.stderr, disable=args.quiet) as bar:

        def advance(rows: int) -> None:
            if total is not None and bar.n + rows >= total:
                bar.n += rows  # the last chunk: closing draws the full bar, once (an update would draw it too)
            else:
                bar.update(rows)

        return ingest_sync_events(context, tenant_id, args.file, progress=advance)


def cmd_train_conflict(args: argparse.Namespace) -> Any:
    from shared.conflict.training import train_candidate

    context = get_context()
    tenant_id = context.tenants.find_tenant(args.tenant).tenant_id if args.tenant else None
    result = train_candidate(context, end=datetime.now(UTC), days_back=args.days_back, actor=args.actor,
                             tenant_id=tenant_id)
    assert result.version is not None
    report = {"version_id": result.version.version_id, "label": result.version.label, "status": "candidate",
              "metrics": result.metrics, "reliability": result.manifest["reliability"],
              "basis": result.manifest["basis"], "l2": result.manifest["l2"], "split": result.manifest["split"]}
    if args.activate:
        report["status"] = context.registry.activate(result.version.version_id, actor=args.actor,
                                                     reason="mlstack train conflict --activate").status
    return report


def cmd_score_conflict(args: argparse.Namespace) -> Any:
    from shared.conflict.scoring import score_conflict_file

    check_batch_files(args.input, args.output)  # before connecting: a typo costs no database round trip
    context = get_context()
    tenant_id = context.tenants.find_tenant(args.tenant).tenant_id
    return score_conflict_file(context, tenant_id, args.input, args.output)


def add_cli_commands(groups: CliGroups) -> None:
    p = groups.add(groups.group("ingest", "bulk imports"), "sync-events", cmd_ingest_sync_events,
                   "import sync-event history (CSV or NDJSON)")
    p.add_argument("file", type=Path)
    p.add_argument("--tenant", required=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = groups.add(groups.group("train", "train models"), "conflict", cmd_train_conflict,
                   "train a conflict candidate on the last N days")
    p.add_argument("--days-back", type=days, default=90)
    p.add_argument("--tenant", help="train the tenant's own model on its events (default: global, all tenants)")
    add_candidate_flags(p)

    p = groups.add(groups.group("score", "batch scoring"), "conflict", cmd_score_conflict,
                   "score a CSV of requests with the active conflict model")
    add_batch_files(p)


CONFLICT_SLICE = Slice(
    name="conflict",
    kinds=(CONFLICT,),
    jobs=(
        Job("track-conflict-outcomes", "rate(6 hours)",
            "Label conflict predictions older than 24 h; live ROC-AUC, PR-AUC and Brier", _track_outcomes),
        Job("retrain-conflict", "cron(0 3 ? * MON *)",
            "Train a conflict candidate on 90 days; promote only if better", _retrain),
    ),
    cli=add_cli_commands,
    routes_module="functions.api_conflict",
    retrainers={CONFLICT.name: _retrain_scope},
)
