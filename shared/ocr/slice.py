"""The OCR feedback loop as one slice: its kind, scheduled jobs, CLI commands and routes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.context import AppContext, get_context
from shared.ocr.kind import OCR_ERROR
from shared.platform.cli_args import check_batch_files, days, iso_datetime, positive_int, share
from shared.platform.jobs import CliGroups, Job, Slice, add_batch_files, add_candidate_flags


def _track_outcomes(context: AppContext) -> dict[str, Any]:
    from shared.ocr.retraining import track_ocr_outcomes
    from shared.ocr.services import ocr_services

    return track_ocr_outcomes(ocr_services(context))


def _retrain(context: AppContext) -> dict[str, Any]:
    from shared.ocr.retraining import retrain_ocr
    from shared.ocr.services import ocr_services

    return retrain_ocr(ocr_services(context), [t.tenant_id for t in context.tenants.list_tenants()])


def _select_labels(context: AppContext) -> dict[str, Any]:
    from shared.ocr.labelling import select_batches_for_all
    from shared.ocr.services import ocr_services

    return select_batches_for_all(ocr_services(context))


# -- CLI ----------------------------------------------------------------------------------------


def _tenant_and_services(slug: str) -> tuple[str, Any]:
    from shared.ocr.services import ocr_services

    context = get_context()
    return context.tenants.find_tenant(slug).tenant_id, ocr_services(context)


def cmd_ingest_readings(args: argparse.Namespace) -> Any:
    from shared.ocr.ingest import ingest_readings

    return ingest_readings(*_tenant_and_services(args.tenant)[::-1], args.file)


def cmd_ingest_corrections(args: argparse.Namespace) -> Any:
    from shared.ocr.ingest import ingest_corrections

    return ingest_corrections(*_tenant_and_services(args.tenant)[::-1], args.file)


def cmd_select_batch(args: argparse.Namespace) -> Any:
    from shared.ocr.labelling import select_batch

    tenant_id, services = _tenant_and_services(args.tenant)
    return select_batch(services, tenant_id, args.size)


def cmd_triage(args: argparse.Namespace) -> Any:
    from shared.ocr.triage import triage_file

    check_batch_files(args.input, args.output)  # before connecting
    tenant_id, services = _tenant_and_services(args.tenant)
    return triage_file(services, tenant_id, args.input, args.output)


def cmd_metrics(args: argparse.Namespace) -> Any:
    from shared.ocr.quality import ocr_metrics

    tenant_id, services = _tenant_and_services(args.tenant)
    return ocr_metrics(services, tenant_id, target_share=args.target_share)


def cmd_settings(args: argparse.Namespace) -> Any:
    from shared.ocr.settings import change_settings

    tenant_id, services = _tenant_and_services(args.tenant)
    return change_settings(services, tenant_id, threshold=args.threshold, daily_budget=args.daily_budget,
                           countries=args.countries)


def cmd_plate_counts(args: argparse.Namespace) -> Any:
    from shared.ocr.plate_counts_repository import check_plate_counts

    context = get_context()
    tenant_id = context.tenants.find_tenant(args.tenant).tenant_id
    return check_plate_counts(context.database, tenant_id, recount=args.recount)


def cmd_train(args: argparse.Namespace) -> Any:
    from shared.ocr.retraining import train_ocr
    from shared.ocr.services import ocr_services

    context = get_context()
    services = ocr_services(context)
    tenant_id = context.tenants.find_tenant(args.tenant).tenant_id if args.tenant else None
    end = args.end or datetime.now(UTC)
    result = train_ocr(services, end=end, tenant_id=tenant_id, days_back=args.days_back, actor=args.actor)
    assert result.version is not None
    report = {"version_id": result.version.version_id, "label": result.version.label, "status": "candidate",
              "metrics": result.metrics, "split": result.manifest["split"],
              "capture_threshold": result.manifest["capture_threshold"]}
    if args.activate:
        report["status"] = context.registry.activate(result.version.version_id, actor=args.actor,
                                                     reason="mlstack train ocr --activate").status
    return report


def _file_command(group: Any, groups: CliGroups, name: str, handler: Any, help_text: str) -> None:
    p = groups.add(group, name, handler, help_text)
    p.add_argument("file", type=Path)
    p.add_argument("--tenant", required=True)


def add_cli_commands(groups: CliGroups) -> None:
    ingest = groups.group("ingest", "bulk imports")
    _file_command(ingest, groups, "ocr-readings", cmd_ingest_readings,
                  "import OCR reading history (NDJSON or CSV), idempotent on client_reading_id")
    _file_command(ingest, groups, "corrections", cmd_ingest_corrections,
                  "import corrections (CSV: client_reading_id, corrected_text, correction_type)")

    ocr = groups.group("ocr", "the OCR feedback loop")
    p = groups.add(ocr, "select-batch", cmd_select_batch, "pick the labelling batch and write its manifest")
    p.add_argument("--tenant", required=True)
    p.add_argument("--size", type=positive_int, default=50)
    p = groups.add(ocr, "triage", cmd_triage, "score a file of readings as the API would, storing nothing")
    add_batch_files(p)
    p = groups.add(ocr, "metrics", cmd_metrics, "capture, corrections, backlog and quality figures (JSON)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--target-share", type=share, default=0.8,
                   help="share of errors the threshold should catch, above 0 and at most 1")
    p = groups.add(ocr, "settings", cmd_settings, "show or change the tenant's capture settings")
    p.add_argument("--tenant", required=True)
    p.add_argument("--threshold", help="capture at this error probability or above; 'default' to clear")
    p.add_argument("--daily-budget", help="at most this many captures a day; 'none' to clear")
    p.add_argument("--countries", help="plate countries, e.g. GB,DE,NL; 'default' to clear")
    p = groups.add(ocr, "plate-counts", cmd_plate_counts,
                   "check the gates' kept plate counts against the stored readings (JSON)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--recount", action="store_true",
                   help="count them again from the readings (holds off every writer of readings meanwhile)")

    p = groups.add(groups.group("train", "train models"), "ocr", cmd_train,
                   "train an OCR error-model candidate on the last N days of corrections")
    p.add_argument("--tenant", help="the tenant's own model (default: global, all tenants)")
    p.add_argument("--days-back", type=days, default=None)
    p.add_argument("--end", type=iso_datetime, help="end of the window, ISO 8601 (default: now)")
    add_candidate_flags(p)


OCR_SLICE = Slice(
    name="ocr",
    kinds=(OCR_ERROR,),
    jobs=(
        Job("track-ocr-outcomes", "rate(1 day)",
            "Label OCR error scores (corrected or a week old); live ROC-AUC, PR-AUC and Brier", _track_outcomes),
        Job("retrain-ocr", "cron(0 4 ? * MON *)",
            "Train OCR error-model candidates (global, per tenant); promote only if better", _retrain),
        Job("select-ocr-labels", "cron(0 5 ? * MON *)",
            "Pick each tenant's weekly labelling batch and write its manifest", _select_labels),
    ),
    cli=add_cli_commands,
    routes_module="functions.api_ocr",
)
