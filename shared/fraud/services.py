"""The fraud slice's wiring: the narrow repositories its use cases take."""

from __future__ import annotations

from dataclasses import dataclass

from shared.context import AppContext
from shared.fraud.features_repository import FraudContext, PostgresFraudContext, PostgresFraudTrainingSource
from shared.fraud.kind import FRAUD
from shared.fraud.operating_points_repository import OperatingPoints, PostgresOperatingPoints
from shared.fraud.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS, PostgresFraudOutcomes
from shared.platform.locks import DatabaseLocks
from shared.platform.loop_services import LoopServices
from shared.platform.prediction_log import PostgresPredictionLog


@dataclass(frozen=True, kw_only=True)
class FraudServices(LoopServices):
    inputs: FraudContext
    operating_points: OperatingPoints


_INPUTS = PostgresFraudContext()
_LOG = PostgresPredictionLog(FRAUD.name, PREDICTIONS_TABLE, SUBJECT_COLUMNS)
_OUTCOMES = PostgresFraudOutcomes()
_OPERATING_POINTS = PostgresOperatingPoints()


def fraud_services(context: AppContext) -> FraudServices:
    return FraudServices(
        transactions=context.database, inputs=_INPUTS, log=_LOG, outcomes=_OUTCOMES,
        training=PostgresFraudTrainingSource(context.database), operating_points=_OPERATING_POINTS,
        registry=context.registry, models=context.serving_models, locks=DatabaseLocks(context.database),
    )
