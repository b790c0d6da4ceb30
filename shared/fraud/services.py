"""The fraud slice's wiring: the narrow repositories its use cases take."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.adapters.objectstore import InMemoryObjectStore
from shared.adapters.signing import ArtifactSigner
from shared.context import AppContext
from shared.fraud.features_repository import FraudContext, PostgresFraudContext, PostgresFraudTrainingSource
from shared.fraud.kind import FRAUD
from shared.fraud.memory import FraudMemory, InMemoryFraudContext, InMemoryFraudOutcomes, InMemoryFraudTrainingSource
from shared.fraud.operating_points_repository import InMemoryOperatingPoints, OperatingPoints, PostgresOperatingPoints
from shared.fraud.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS, PostgresFraudOutcomes
from shared.platform.locks import DatabaseLocks, InMemoryLocks
from shared.platform.loop_services import LoopServices
from shared.platform.prediction_log import InMemoryPredictionLog, PostgresPredictionLog
from shared.platform.registry import Registry
from shared.platform.registry_repository import InMemoryRegistryRepository
from shared.platform.serving_cache import ServingModels
from shared.platform.transactions import InMemoryTransactions


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


def in_memory_fraud_services(memory: FraudMemory | None = None) -> FraudServices:
    """The same bundle on fakes: unit tests of prediction, outcomes and retraining."""
    memory = memory or FraudMemory()
    registry = Registry(InMemoryRegistryRepository(), InMemoryObjectStore(), ArtifactSigner(secrets.token_bytes(32)))
    log = InMemoryPredictionLog(FRAUD.name)
    return FraudServices(
        transactions=InMemoryTransactions(), inputs=InMemoryFraudContext(memory), log=log,
        outcomes=InMemoryFraudOutcomes(log, memory), training=InMemoryFraudTrainingSource(memory),
        operating_points=InMemoryOperatingPoints(), registry=registry,
        models=ServingModels(registry, refresh_seconds=0), locks=InMemoryLocks(),
    )
