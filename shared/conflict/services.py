"""The conflict slice's wiring: the narrow repositories its use cases take, built from the
process context (PostgreSQL) or from fakes (tests)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.conflict.answers_repository import ConflictAnswers, PostgresConflictAnswers
from shared.conflict.features_repository import (
    ConflictFeatures,
    PostgresConflictFeatures,
    PostgresConflictTrainingSource,
)
from shared.conflict.kind import CONFLICT
from shared.conflict.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS, PostgresConflictOutcomes
from shared.context import AppContext
from shared.platform.locks import DatabaseLocks
from shared.platform.loop_services import LoopServices
from shared.platform.prediction_log import PostgresPredictionLog


@dataclass(frozen=True, kw_only=True)
class ConflictServices(LoopServices):
    features: ConflictFeatures
    # Live answers in one statement (features, model, log insert); None: in one transaction.
    answers: ConflictAnswers | None = None


# Stateless: they hold SQL, not connections (each call gets the use case's transaction).
_FEATURES = PostgresConflictFeatures()
_LOG = PostgresPredictionLog(CONFLICT.name, PREDICTIONS_TABLE, SUBJECT_COLUMNS)
_OUTCOMES = PostgresConflictOutcomes()


def conflict_services(context: AppContext) -> ConflictServices:
    return ConflictServices(
        transactions=context.database,
        features=_FEATURES,
        answers=PostgresConflictAnswers(context.database),
        log=_LOG,
        outcomes=_OUTCOMES,
        training=PostgresConflictTrainingSource(context.database),
        registry=context.registry,
        models=context.serving_models,
        locks=DatabaseLocks(context.database),
    )
