"""The attendance-fraud loop as one slice: its kind, scheduled jobs, CLI commands and routes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.context import AppContext, get_context
from shared.errors import InvalidInput
from shared.fraud.kind import FRAUD
from shared.platform.cli_args import check_batch_files, months
from shared.platform.jobs import CliGroups, Job, Slice, add_batch_files, add_candidate_flags


def _track_outcomes(context: AppContext) -> dict[str, Any]:
    from shared.fraud.learning import track_fraud_outcomes

    return track_fraud_outcomes(context)


def _retrain(context: AppContext) -> dict[str, Any]:
    from shared.fraud.learning import retrain_all_fraud_models  # xgboost training: this job only

    return retrain_all_fraud_models(context)


def _retrain_scope(context: AppContext, tenant_id: str | None) -> dict[str, Any]:
    from shared.fraud.learning import retrain_fraud_scope

    return retrain_fraud_scope(context, tenant_id)


def _tenant_id(slug_or_id: str) -> str:
    return get_context().tenants.find_tenant(slug_or_id).tenant_id


def _ingest(kind: str) -> Any:
    def run(args: argparse.Namespace) -> Any:
        from shared.fraud import ingest

        importer = {"sites": ingest.ingest_sites, "holidays": ingest.ingest_holidays,
                    "attendance": ingest.ingest_attendance, "fraud-labels": ingest.ingest_fraud_labels}[kind]
        return importer(get_context(), _tenant_id(args.tenant), args.file)

    return run


def cmd_train_fraud(args: argparse.Namespace) -> Any:
    from shared.fraud.learning import train_fraud_candidate

    if bool(args.tenant) == args.global_model:
        raise InvalidInput("give --tenant T or --global")
    context = get_context()
    result = train_fraud_candidate(context, tenant_id=_tenant_id(args.tenant) if args.tenant else None,
                                   months_back=args.months_back, actor=args.actor)
    assert result.version is not None
    report = {"version_id": result.version.version_id, "label": result.version.label, "status": "candidate",
              "metrics": result.metrics, "split": result.manifest["split"],
              "operating_point": {k: v for k, v in result.manifest["operating_point"].items() if k != "tradeoff"}}
    if args.activate:
        report["status"] = context.registry.activate(result.version.version_id, actor=args.actor,
                                                     reason="mlstack train fraud --activate").status
    return report


def cmd_score_fraud(args: argparse.Namespace) -> Any:
    from shared.fraud.scoring import score_fraud_file

    check_batch_files(args.input, args.output)  # before connecting
    return score_fraud_file(get_context(), _tenant_id(args.tenant), args.input, args.output)


def add_cli_commands(groups: CliGroups) -> None:
    ingest = groups.group("ingest", "bulk imports")
    for name, what in (("sites", "sites: site_id, latitude, longitude, radius_m, timezone (CSV/NDJSON)"),
                       ("holidays", "the tenant's holidays: date, name (CSV/NDJSON)"),
                       ("attendance", "attendance events (CSV or NDJSON), one transaction"),
                       ("fraud-labels", "investigators' labels: client_event_id, is_fraud (CSV/NDJSON)")):
        p = groups.add(ingest, name, _ingest(name), f"import {what}")
        p.add_argument("file", type=Path)
        p.add_argument("--tenant", required=True)

    p = groups.add(groups.group("train", "train models"), "fraud", cmd_train_fraud,
                   "train a fraud candidate: a tenant's own (--tenant) or the pooled global one (--global)")
    p.add_argument("--tenant")
    p.add_argument("--global", dest="global_model", action="store_true")
    p.add_argument("--months-back", type=months, default=6)
    add_candidate_flags(p)

    p = groups.add(groups.group("score", "batch scoring"), "fraud", cmd_score_fraud,
                   "score attendance events (intake schema) with the tenant's serving fraud model")
    add_batch_files(p)


FRAUD_SLICE = Slice(
    name="fraud",
    kinds=(FRAUD,),
    jobs=(
        Job("track-fraud-outcomes", "cron(30 2 * * ? *)",
            "Join investigators' labels to fraud scores; 30 days unlabelled = legitimate; live PR-AUC", _track_outcomes),
        Job("retrain-fraud", "cron(0 4 1 * ? *)",
            "Monthly: retrain the global and each tenant's fraud model; promote only if PR-AUC is better", _retrain),
    ),
    cli=add_cli_commands,
    routes_module="functions.api_fraud",
    retrainers={FRAUD.name: lambda context, tenant_id: _retrain_scope(context, tenant_id)},
)
