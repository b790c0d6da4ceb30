"""The local run command's demo: tenants, keys printed once, a sync history, a trained model."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.adapters.migrate import migrate
from shared.context import AppContext
from shared.errors import InsufficientData, NotFound

DEMO_SLUG = "demo"
# The demo tenant plus two more, so the history (and the global model) spans several tenants.
DEMO_TENANTS = (DEMO_SLUG, "northwind", "contoso")
SEED_BATCH = 5000


def _tenant(context: AppContext, slug: str, lines: list[str]) -> str:
    try:
        return context.tenants.find_tenant(slug).tenant_id
    except NotFound:
        roles = ("client", "staff") if slug == DEMO_SLUG else ()
        tenant, keys = context.tenants.create_tenant_with_keys(slug, f"{slug.title()} (demo)", roles)
        if keys:
            client, staff = keys
            lines += [
                f"mlstack: created demo tenant {tenant.tenant_id}; keys are shown once, store them now:",
                f"  client key: {client.secret}",
                f"  staff key:  {staff.secret}",
            ]
        return tenant.tenant_id


def seed_sync_history(context: AppContext, tenant_ids: dict[str, str], events: Iterable[dict[str, Any]]) -> int:
    """Store generated events through the same idempotent path as the API."""
    from shared.conflict.events import SyncEvent
    from shared.conflict.events_repository import store_sync_events

    pending: dict[str, list[SyncEvent]] = {}
    stored = 0

    def flush(slug: str) -> None:
        nonlocal stored
        with context.database.transaction() as tx:
            store_sync_events(tx, tenant_ids[slug], pending[slug], datetime.now(UTC))
        stored += len(pending[slug])
        pending[slug] = []

    for raw in events:
        slug = raw["tenant"]
        fields = {k: v for k, v in raw.items() if k != "tenant"}
        pending.setdefault(slug, []).append(SyncEvent.model_validate(fields))
        if len(pending[slug]) >= SEED_BATCH:
            flush(slug)
    for slug in list(pending):
        if pending[slug]:
            flush(slug)
    return stored


def _seed_conflict_model(context: AppContext, tenant_ids: dict[str, str], lines: list[str]) -> None:
    from shared.conflict.demo_data import DemoConfig, generate_sync_history
    from shared.conflict.events_repository import count_sync_events

    if context.registry.active_version("conflict", None) is not None:
        lines.append("mlstack: a conflict model is active; demo data and training skipped")
        return
    with context.database.transaction() as tx:
        have_events = count_sync_events(tx)
    if not have_events:
        started = time.perf_counter()
        config = replace(DemoConfig(), tenants=DEMO_TENANTS, end=datetime.now(UTC))
        stored = seed_sync_history(context, tenant_ids, generate_sync_history(config))
        lines.append(f"mlstack: seeded {stored} demo sync events in {time.perf_counter() - started:.1f} s")
    from shared.conflict.training import train_candidate

    started = time.perf_counter()
    try:
        result = train_candidate(context, end=datetime.now(UTC), actor="demo")
    except InsufficientData as exc:
        lines.append(f"mlstack: no conflict model trained: {exc.message}")
        return
    assert result.version is not None
    context.registry.activate(result.version.version_id, actor="demo", reason="demo start")
    metrics = result.metrics
    lines.append(
        f"mlstack: trained and activated {result.version.label} in {time.perf_counter() - started:.1f} s"
        f" (ROC-AUC {metrics['roc_auc']:.3f}, Brier {metrics['brier']:.4f} on the newest 20 %)"
    )


def ensure_demo(context: AppContext, *, with_models: bool = True) -> list[str]:
    """Make the local deployment usable; returns lines to show the person who started it."""
    lines: list[str] = []
    applied = migrate(context.database)
    if applied:
        lines.append(f"mlstack: applied migrations {', '.join(applied)}")
    tenant_ids = {slug: _tenant(context, slug, lines) for slug in DEMO_TENANTS}
    if not any("client key" in line for line in lines):
        lines.append(
            f"mlstack: demo tenant {tenant_ids[DEMO_SLUG]} exists; its keys were printed when it was created"
            " (new one: .venv/bin/mlstack --env-file .mlstack/local.env keys create --tenant demo --role client)"
        )
    if with_models:
        _seed_conflict_model(context, tenant_ids, lines)
        seed_ocr_demo(context, tenant_ids[DEMO_SLUG], lines)
        seed_fraud_demo(context, tenant_ids, lines)
        seed_dashboards_demo(context, tenant_ids[DEMO_SLUG], lines)
    return lines


def seed_dashboards_demo(context: AppContext, tenant_id: str, lines: list[str]) -> None:
    """What the dashboards draw beyond the loops' histories, each once: the demo tenant's conflict
    predictions and fraud scores replayed through the real paths (then their outcome jobs), an OCR
    labelling batch, a month of one-minute monitoring points with anomalies and the scans after
    them, and a drift report."""
    from shared.conflict.demo_replay import replay_predictions
    from shared.fraud.demo_replay import replay_scores
    from shared.monitoring.demo import seed_monitoring_demo
    from shared.monitoring.services import monitoring_services
    from shared.ocr.dashboard_repository import latest_batch
    from shared.ocr.demo_replay import replay_readings
    from shared.ocr.labelling import select_batch
    from shared.ocr.services import ocr_services
    from shared.slices import job_named

    took: dict[str, float] = {}

    def timed(name: str, step: Any) -> Any:
        started = time.perf_counter()
        result = step()
        took[name] = time.perf_counter() - started
        return result

    has_conflict_model = context.registry.active_version("conflict", None) is not None
    conflict = timed("conflict", lambda: replay_predictions(context, tenant_id)) if has_conflict_model else {}
    fraud = timed("fraud", lambda: replay_scores(context, tenant_id))
    ocr = ocr_services(context)
    with context.database.transaction() as tx:
        batch = latest_batch(tx, tenant_id)
    if batch is None and context.registry.active_version("ocr_error", None) is not None:
        timed("ocr", lambda: (replay_readings(ocr, tenant_id), select_batch(ocr, tenant_id)))
    monitoring = timed("monitoring", lambda: seed_monitoring_demo(monitoring_services(context)))
    if monitoring.get("series") or conflict.get("predictions") or fraud.get("scored"):
        timed("drift", lambda: job_named("check-drift").run(context))
        lines.append(
            f"mlstack: dashboards' demo: {conflict.get('predictions', 0)} conflict predictions and"
            f" {fraud.get('scored', 0)} fraud scores replayed, {monitoring.get('points', 0)} monitoring points"
            f" ({monitoring.get('alerts', 0)} alerts), a drift check, in {sum(took.values()):.1f} s ("
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items()) + ")")


def seed_ocr_demo(context: AppContext, tenant_id: str, lines: list[str], *, days: int = 90) -> None:
    """A small OCR history for the demo tenant (meters and gates with realistic confusions, the
    seed-era corrections), and the error model trained on it, through the same paths as the CLI."""
    from shared.ocr.demo_data import DemoOcrConfig, corrections_for, generate_ocr_history
    from shared.ocr.ingest import store_corrections, store_history
    from shared.ocr.kind import OCR_ERROR
    from shared.ocr.readings import OcrReading
    from shared.ocr.retraining import train_ocr
    from shared.ocr.services import ocr_services

    if context.registry.active_version(OCR_ERROR.name, None) is not None:
        lines.append("mlstack: an OCR error model is active; OCR demo data and training skipped")
        return
    services = ocr_services(context)
    started = time.perf_counter()
    config = replace(DemoOcrConfig(), meters=40, gates=2, plate_reads_per_gate_per_day=40, days=days,
                     end=datetime.now(UTC))
    history = generate_ocr_history(config)
    store_history(services, tenant_id, [(n, OcrReading.model_validate(r.record)) for n, r in enumerate(history)])
    store_corrections(services, tenant_id, list(enumerate(corrections_for(history, until=config.end))))
    try:
        result = train_ocr(services, end=datetime.now(UTC), actor="demo")
    except InsufficientData as exc:
        lines.append(f"mlstack: no OCR error model trained: {exc.message}")
        return
    assert result.version is not None
    context.registry.activate(result.version.version_id, actor="demo", reason="demo start")
    lines.append(f"mlstack: seeded {len(history)} demo OCR readings and trained {result.version.label} in"
                 f" {time.perf_counter() - started:.1f} s (PR-AUC {result.metrics['pr_auc']:.3f} on the newest 20 %)")


def seed_fraud_demo(context: AppContext, tenant_ids: dict[str, str], lines: list[str], *, days: int = 150) -> None:
    """A simulated attendance history for the demo tenants (the last one too small for a model of
    its own), the pooled global fraud model and the demo tenant's own, trained and activated."""
    from shared.fraud.demo import seed_fraud_history
    from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
    from shared.fraud.kind import FRAUD
    from shared.fraud.learning import train_fraud_candidate

    if context.registry.active_version(FRAUD.name, None) is not None:
        lines.append("mlstack: a fraud model is active; fraud demo data and training skipped")
        return
    started = time.perf_counter()
    # contoso's 4 users confirm about 8 frauds in 150 days, under the 30 a tenant's own model needs
    # (8 users confirmed 33 and could train one), so it is served by the global model.
    sizes = dict(zip(DEMO_TENANTS, (120, 60, 4), strict=True))
    history = generate_fraud_history(FraudDemoConfig(tenants=tuple(sizes.items()), days=days, end=datetime.now(UTC)))
    stored = seed_fraud_history(context, tenant_ids, history)
    trained = []
    for tenant_id in (None, tenant_ids[DEMO_SLUG]):
        try:
            result = train_fraud_candidate(context, tenant_id=tenant_id, actor="demo")
        except InsufficientData as exc:
            lines.append(f"mlstack: no fraud model trained: {exc.message}")
            continue
        assert result.version is not None
        context.registry.activate(result.version.version_id, actor="demo", reason="demo start")
        trained.append(f"{result.version.label} (PR-AUC {result.metrics['pr_auc']:.3f})")
    lines.append(f"mlstack: seeded {stored} demo attendance events and trained {', '.join(trained) or 'nothing'}"
                 f" in {time.perf_counter() - started:.1f} s")
