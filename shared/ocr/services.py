"""The OCR slice's wiring: the narrow repositories its use cases take, built from the process
context (PostgreSQL, the object store) or from fakes (tests: `in_memory_services`)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.objectstore import ObjectStore
from shared.context import AppContext
from shared.ocr.corrections_repository import CorrectionRepository, PostgresCorrectionRepository
from shared.ocr.kind import OCR_ERROR
from shared.ocr.labelling_repository import LabellingRepository, PostgresLabellingRepository
from shared.ocr.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS, PostgresOcrOutcomes
from shared.ocr.quality_repository import PostgresQualityRepository, QualityRepository
from shared.ocr.readings_repository import PostgresReadingRepository, ReadingRepository
from shared.ocr.training_repository import PostgresOcrTrainingSource
from shared.platform.locks import DatabaseLocks, Locks
from shared.platform.outcomes import OutcomeSource
from shared.platform.prediction_log import PostgresPredictionLog, PredictionLog
from shared.platform.registry import Registry
from shared.platform.serving_cache import ServingModels
from shared.platform.training import TrainingSource
from shared.platform.transactions import Transactions


@dataclass(frozen=True)
class OcrServices:
    transactions: Transactions
    readings: ReadingRepository
    corrections: CorrectionRepository
    labelling: LabellingRepository
    quality: QualityRepository
    log: PredictionLog
    outcomes: OutcomeSource
    training: TrainingSource
    registry: Registry
    models: ServingModels
    locks: Locks
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
