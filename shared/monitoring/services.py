"""The monitoring slice's wiring: the narrow repositories its use cases take, built from the
process context (PostgreSQL, SQS, SNS) or from fakes (tests and the benchmark)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from shared.adapters.objectstore import InMemoryObjectStore
from shared.adapters.signing import ArtifactSigner
from shared.context import AppContext
from shared.monitoring.alerts_repository import AlertsRepository, InMemoryAlertsRepository, PostgresAlertsRepository
from shared.monitoring.drift_repository import DriftRepository, InMemoryDriftRepository, PostgresDriftRepository
from shared.monitoring.notify import LogNotifier, Notifier, RecordingNotifier, SnsNotifier
from shared.monitoring.precedents_repository import (
    InMemoryPrecedentsRepository,
    PostgresPrecedentsRepository,
    PrecedentsRepository,
)
from shared.monitoring.queues import CloudWatchQueueAges, QueueProbe, SqsQueueProbe, StaticQueueProbe
from shared.monitoring.series_repository import (
    InMemorySeriesRepository,
    PostgresSeriesRepository,
    SeriesRepository,
)
from shared.monitoring.state_training import SeriesTrainingSource
from shared.monitoring.system_repository import InMemorySystemRepository, PostgresSystemRepository, SystemRepository
from shared.monitoring.timings_repository import (
    InMemoryTimingsRepository,
    PostgresTimingsRepository,
    TimingsRepository,
)
from shared.platform.locks import DatabaseLocks, InMemoryLocks, Locks
from shared.platform.registry import Registry
from shared.platform.registry_repository import InMemoryRegistryRepository
from shared.platform.serving_cache import ServingModels
from shared.platform.transactions import InMemoryTransactions, Transactions


@dataclass(frozen=True, kw_only=True)
class MonitoringServices:
    transactions: Transactions
    series: SeriesRepository
    precedents: PrecedentsRepository
    alerts: AlertsRepository
    timings: TimingsRepository
    system: SystemRepository
    drift: DriftRepository
    queues: QueueProbe
    notifier: Notifier
    registry: Registry
    models: ServingModels
    locks: Locks
    training: SeriesTrainingSource
    # kind -> its prediction table (from the composition layer: shared/slices.py)
    watched: dict[str, str] = field(default_factory=dict)
    raw_days: int = 30
    # Alerts of one service or host within this window of its incident's last alert join it.
    incident_window: timedelta = timedelta(minutes=30)


_SERIES = PostgresSeriesRepository()
_PRECEDENTS = PostgresPrecedentsRepository()
_ALERTS = PostgresAlertsRepository()
_TIMINGS = PostgresTimingsRepository()
_SYSTEM = PostgresSystemRepository()
_DRIFT = PostgresDriftRepository()


def monitoring_services(context: AppContext, watched: dict[str, str] | None = None) -> MonitoringServices:
    settings = context.settings
    notifier: Notifier = (SnsNotifier(context.aws("sns"), settings.alerts_topic_arn) if settings.alerts_topic_arn
                          else LogNotifier())
    queue_urls = [settings.training_jobs_queue_url, settings.buffered_writes_queue_url]
    queues: QueueProbe = (SqsQueueProbe(context.aws("sqs"), queue_urls, CloudWatchQueueAges(context.aws("cloudwatch")))
                          if any(queue_urls) else StaticQueueProbe())
    return MonitoringServices(
        transactions=context.database, series=_SERIES, precedents=_PRECEDENTS, alerts=_ALERTS, timings=_TIMINGS,
        system=_SYSTEM, drift=_DRIFT, queues=queues, notifier=notifier, registry=context.registry,
        models=context.serving_models, locks=DatabaseLocks(context.database),
        training=SeriesTrainingSource(context.database, _SERIES),
        watched=dict(watched or {}), raw_days=settings.monitoring_raw_days,
        incident_window=timedelta(minutes=settings.incident_window_minutes),
    )


def in_memory_monitoring_services(watched: dict[str, str] | None = None) -> MonitoringServices:
    """The same bundle on fakes: unit tests and scripts/bench_monitoring.py."""
    registry = Registry(InMemoryRegistryRepository(), InMemoryObjectStore(), ArtifactSigner(secrets.token_bytes(32)))
    transactions = InMemoryTransactions()
    series = InMemorySeriesRepository()
    return MonitoringServices(
        transactions=transactions, series=series, precedents=InMemoryPrecedentsRepository(),
        alerts=InMemoryAlertsRepository(), timings=InMemoryTimingsRepository(), system=InMemorySystemRepository(),
        drift=InMemoryDriftRepository(),
        queues=StaticQueueProbe(), notifier=RecordingNotifier(), registry=registry,
        models=ServingModels(registry, refresh_seconds=0), locks=InMemoryLocks(),
        training=SeriesTrainingSource(transactions, series), watched=dict(watched or {}),
    )
