"""The repositories every loop's use cases share (the lifecycle's part of a slice's bundle); a
slice's `services.py` extends it with its own intake and feature repositories."""

from __future__ import annotations

from dataclasses import dataclass

from shared.platform.locks import Locks
from shared.platform.outcomes import OutcomeSource
from shared.platform.prediction_log import PredictionLog
from shared.platform.registry import Registry
from shared.platform.serving_cache import ServingModels
from shared.platform.training import TrainingSource
from shared.platform.transactions import Transactions


@dataclass(frozen=True, kw_only=True)
class LoopServices:
    transactions: Transactions
    log: PredictionLog
    outcomes: OutcomeSource
    training: TrainingSource
    registry: Registry
    models: ServingModels
    locks: Locks
