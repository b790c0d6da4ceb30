"""The OCR slice's wiring: the narrow repositories its use cases take, built from the process
context (PostgreSQL, the object store) or from fakes (tests: `in_memory_services`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.adapters.objectstore import InMemoryObjectStore, ObjectStore
from shared.adapters.signing import ArtifactSigner
from shared.context import AppContext
from shared.ocr.corrections_repository import (
    CorrectionRepository,
    InMemoryCorrectionRepository,
    PostgresCorrectionRepository,
)
from shared.ocr.kind import OCR_ERROR
from shared.ocr.labelling_repository import (
    InMemoryLabellingRepository,
    LabellingRepository,
    PostgresLabellingRepository,
)
from shared.ocr.outcomes_repository import (
    PREDICTIONS_TABLE,
    SUBJECT_COLUMNS,
    InMemoryOcrOutcomes,
    PostgresOcrOutcomes,
)
from shared.ocr.quality_repository import InMemoryQualityRepository, PostgresQualityRepository, QualityRepository
from shared.ocr.readings_repository import (
    InMemoryReadingRepository,
    OcrMemory,
    PostgresReadingRepository,
    ReadingRepository,
)
from shared.ocr.training_repository import InMemoryOcrTrainingSource, PostgresOcrTrainingSource
from shared.platform.locks import DatabaseLocks, InMemoryLocks
from shared.platform.loop_services import LoopServices
from shared.platform.prediction_log import InMemoryPredictionLog, PostgresPredictionLog
from shared.platform.registry import Registry
from shared.platform.registry_repository import InMemoryRegistryRepository
from shared.platform.serving_cache import ServingModels
from shared.platform.transactions import InMemoryTransactions


@dataclass(frozen=True, kw_only=True)
class OcrServices(LoopServices):
    readings: ReadingRepository
    corrections: CorrectionRepository
    labelling: LabellingRepository
    quality: QualityRepository
    store: ObjectStore
    # Where the store's keys live (s3://bucket/prefix or file:///path): photos' URIs for labelling.
    store_url: str


# Stateless: they hold SQL, not connections (each call gets the use case's transaction).
_READINGS = PostgresReadingRepository()
_CORRECTIONS = PostgresCorrectionRepository()
_LABELLING = PostgresLabellingRepository()
_QUALITY = PostgresQualityRepository()
_LOG = PostgresPredictionLog(OCR_ERROR.name, PREDICTIONS_TABLE, SUBJECT_COLUMNS)
_OUTCOMES = PostgresOcrOutcomes()


def ocr_services(context: AppContext) -> OcrServices:
    return OcrServices(
        transactions=context.database, readings=_READINGS, corrections=_CORRECTIONS, labelling=_LABELLING,
        quality=_QUALITY, log=_LOG, outcomes=_OUTCOMES, training=PostgresOcrTrainingSource(context.database),
        registry=context.registry, models=context.serving_models, locks=DatabaseLocks(context.database),
        store=context.object_store, store_url=context.settings.object_store_url,
    )


def in_memory_ocr_services(memory: OcrMemory | None = None, store: ObjectStore | None = None) -> OcrServices:
    """The same bundle on fakes: unit tests and the quality benchmark (scripts/bench_ocr.py)."""
    memory = memory or OcrMemory()
    store = store or InMemoryObjectStore()
    registry = Registry(InMemoryRegistryRepository(), store, ArtifactSigner(secrets.token_bytes(32)))
    log = InMemoryPredictionLog(OCR_ERROR.name)
    return OcrServices(
        transactions=InMemoryTransactions(), readings=InMemoryReadingRepository(memory),
        corrections=InMemoryCorrectionRepository(memory), labelling=InMemoryLabellingRepository(memory),
        quality=InMemoryQualityRepository(memory), log=log, outcomes=InMemoryOcrOutcomes(log, memory),
        training=InMemoryOcrTrainingSource(memory), registry=registry,
        models=ServingModels(registry, refresh_seconds=0), locks=InMemoryLocks(), store=store,
        store_url="s3://demo-bucket/store",
    )
