"""A toy model kind taken through the whole shared lifecycle on in-memory fakes: train -> activate ->
predict (tenant scope, global fallback, heuristic) -> log -> outcome -> retrain -> promote ->
rollback, and shadow mode. Adding a kind is writing what the first block of this file writes."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.adapters.objectstore import InMemoryObjectStore
from shared.adapters.signing import ArtifactSigner
from shared.errors import DependencyUnavailable
from shared.platform.kinds import Fitted, ModelKind, PromotionPolicy, TrainingPolicy, TrainingSet
from shared.platform.locks import InMemoryLocks
from shared.platform.outcomes import track_outcomes
from shared.platform.prediction_log import InMemoryPredictionLog
from shared.platform.registry import Registry
from shared.platform.registry_repository import InMemoryRegistryRepository
from shared.platform.retraining import RETRAIN_DECISIONS, retrain
from shared.platform.serving import choose_serving
from shared.platform.serving_cache import ServingModels
from shared.platform.training import train_candidate
from shared.platform.training_jobs import DUPLICATE_WINDOW, TrainingJob, fan_out, parse_job, run_job
from shared.platform.transactions import InMemoryTransactions


# -- the toy kind: one feature, a logistic curve fitted by moments (the whole contract) -----------
@dataclass(frozen=True)
class ToyModel:
    slope: float
    offset: float

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = 1 / (1 + np.exp(-self.slope * (design[:, 0] - self.offset)))
        return result


@dataclass(frozen=True)
class ToyKind:
    name: str = "toy"
    feature_names: tuple[str, ...] = ("x",)
    artifact_format: str = "json"
    heuristic_label: str = "toy-heuristic"
    training: TrainingPolicy = TrainingPolicy(days_back=30, min_rows=100, min_positives=10)
    promotion: PromotionPolicy = PromotionPolicy(metric="pr_auc", bootstrap_resamples=200)

    def design_matrix(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        return np.array([[float(row["x"])] for row in rows], dtype=np.float64).reshape(-1, 1)

    def fit(self, train: TrainingSet) -> Fitted:
        positive, negative = train.design[train.labels, 0], train.design[~train.labels, 0]
        model = ToyModel(slope=4.0 * float(np.sign(positive.mean() - negative.mean())),
                         offset=float((positive.mean() + negative.mean()) / 2))
        return Fitted(model, json.dumps(model.__dict__).encode(), "moments", {})

    def load(self, artifact: bytes) -> ToyModel:
        return ToyModel(**json.loads(artifact))

    def heuristic(self, features: Mapping[str, float]) -> float:
        return 1 / (1 + math.exp(-features["x"]))

    def risk_level(self, probability: float) -> str:
        return "high" if probability >= 0.5 else "low"
# ------------------------------------------------------------------------------------------------


NOW = datetime(2026, 11, 30, tzinfo=UTC)
TOY: ModelKind = ToyKind()


class ToySource:
    """Training rows: x, and the truth `x > threshold` (a tenant of its own may invert it)."""

    def __init__(self) -> None:
        self.inverted_tenants: set[str] = set()

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        rng = np.random.default_rng(len(tenant_id or ""))
        x = rng.normal(0, 1, 600)
        labels = (x + rng.normal(0, 0.3, 600)) > 0.5
        if tenant_id in self.inverted_tenants:
            labels = ~labels
        times = [start + (end - start) * i / 600 for i in range(600)]
        return TrainingSet(x.reshape(-1, 1), labels, times, start, end)


class ToyOutcomes:
    """Outcome source: a prediction's truth is carried in its subject, known a day later."""

    def __init__(self, log: InMemoryPredictionLog) -> None:
        self.log = log

    def label_due(self, session: Any, now: datetime) -> int:
        due = [r for r in self.log.rows if r["outcome"] is None and r["predicted_at"] <= now - timedelta(days=1)]
        for row in due:
            row["outcome"], row["outcome_at"] = row["truth"], now
        return len(due)


@pytest.fixture
def world() -> dict[str, Any]:
    store = InMemoryObjectStore()
    registry = Registry(InMemoryRegistryRepository(), store, ArtifactSigner(secrets.token_bytes(32)))
    log = InMemoryPredictionLog("toy")
    return {"registry": registry, "store": store, "models": ServingModels(registry, refresh_seconds=0), "log": log,
            "source": ToySource(), "outcomes": ToyOutcomes(log), "tx": InMemoryTransactions(), "locks": InMemoryLocks()}


def predict(world: dict[str, Any], tenant: str, x: float, request_id: str, at: datetime = NOW) -> dict[str, Any]:
    """The toy loop's predict use case: choose, score, log the answer and any shadow score."""
    serving = choose_serving(TOY, world["models"], tenant, request_id)
    probability = serving.probability({"x": x})
    with world["tx"].transaction() as tx:
        prediction_id = world["log"].append(tx, serving.records(
            tenant_id=tenant, request_id=request_id, subject={"truth": x > 0.5}, features={"x": x},
            probability=probability, predicted_at=at))
    return {"id": prediction_id, "p": probability, "scope": serving.scope, "label": serving.label,
            "variant": serving.variant}


def train(world: dict[str, Any], tenant: str | None = None) -> Any:
    return train_candidate(TOY, world["source"], world["registry"], tenant_id=tenant, end=NOW).version


def test_fallback_chain_tenant_then_global_then_heuristic(world: dict[str, Any]) -> None:
    registry = world["registry"]
    assert predict(world, "t1", 2.0, "r0")["scope"] == "heuristic"
    global_version = train(world)
    assert global_version.status == "candidate" and global_version.manifest["promotion_metric"] == "pr_auc"
    registry.activate(global_version.version_id, actor="test")
    assert predict(world, "t1", 2.0, "r1")["scope"] == "global"
    world["source"].inverted_tenants.add("t1")
    tenant_version = train(world, "t1")
    registry.activate(tenant_version.version_id, actor="test")
    mine, other = predict(world, "t1", 2.0, "r2"), predict(world, "t2", 2.0, "r3")
    assert (mine["scope"], mine["label"]) == ("tenant", tenant_version.label) and mine["p"] < 0.5
    assert (other["scope"], other["label"]) == ("global", global_version.label) and other["p"] > 0.5
    # After a cold start, a tampered tenant artifact falls back to the global model; with both
    # tampered, to the heuristic.
    world["store"].put(tenant_version.artifact_key, b'{"slope": 9, "offset": 0}')
    world["models"] = ServingModels(registry, refresh_seconds=0)
    assert predict(world, "t1", 2.0, "r4")["scope"] == "global"
    world["store"].put(global_version.artifact_key, b'{"slope": 9, "offset": 0}')
    world["models"] = ServingModels(registry, refresh_seconds=0)
    assert predict(world, "t1", 2.0, "r5")["scope"] == "heuristic"
    assert {r["action"] for r in registry.audit_trail()} >= {"register", "activate", "artifact_rejected"}
    assert [r["scope"] for r in world["log"].rows] == ["heuristic", "global", "tenant", "global", "global", "heuristic"]


def test_a_global_challenger_or_shadow_never_answers_for_a_tenant_served_by_its_own_version(
        world: dict[str, Any]) -> None:
    registry = world["registry"]
    registry.activate(train(world).version_id, actor="test")
    own = train(world, "t1")
    registry.activate(own.version_id, actor="test")
    challenger, shadow = train(world), train(world)
    registry.set_challenger(challenger.version_id, 0.99, actor="test")
    registry.set_shadow(shadow.version_id, True, actor="test")
    mine = [predict(world, "t1", 2.0, f"m{i}") for i in range(20)]
    assert {(a["scope"], a["label"], a["variant"]) for a in mine} == {("tenant", own.label, "champion")}
    assert not [r for r in world["log"].rows if r["tenant_id"] == "t1" and r["variant"] == "shadow"]
    # A tenant the global champion serves gets the global challenger and shadow as before.
    others = [predict(world, "t2", 2.0, f"o{i}") for i in range(20)]
    assert {a["label"] for a in others if a["variant"] == "challenger"} == {challenger.label}
    assert {r["model_version"] for r in world["log"].rows if r["tenant_id"] == "t2" and r["variant"] == "shadow"} == {
        shadow.label}


def test_outcomes_live_metrics_retrain_promote_and_rollback(world: dict[str, Any]) -> None:
    registry = world["registry"]
    backwards = registry.register(kind="toy", tenant_id=None, artifact=b'{"slope": -4.0, "offset": 0.5}',
                                  artifact_format="json", manifest={}, actor="test")
    registry.activate(backwards.version_id, actor="test")
    for i, x in enumerate(np.linspace(-2, 2, 40)):
        predict(world, "t1", float(x), f"r{i}", at=NOW - timedelta(days=2))
    tracked = track_outcomes(world["tx"], world["outcomes"], world["log"], NOW)
    assert tracked["labelled"] == 40
    assert track_outcomes(world["tx"], world["outcomes"], world["log"], NOW)["labelled"] == 0
    live = {m["window_days"]: m for m in tracked["metrics"]}
    assert live[7]["model_label"] == backwards.label and live[7]["roc_auc"] < 0.1  # it ranks backwards

    decision = retrain(TOY, world["source"], registry, world["locks"], now=NOW)
    assert decision["promoted"] is True, decision
    assert registry.active_version("toy", None).version_id == decision["candidate"]
    assert retrain(TOY, world["source"], registry, world["locks"], now=NOW)["promoted"] is False  # no better
    with world["locks"].exclusive("retrain/toy/global"):
        assert "running" in retrain(TOY, world["source"], registry, world["locks"], now=NOW)["reason"]
    restored = registry.rollback("toy", None, actor="test", reason="drill")
    assert restored.version_id == backwards.version_id
    assert predict(world, "t1", 2.0, "after-rollback")["label"] == backwards.label


def test_a_shadow_is_scored_and_logged_on_every_request_but_never_answers(world: dict[str, Any]) -> None:
    registry = world["registry"]
    champion = train(world)
    registry.activate(champion.version_id, actor="test")
    world["source"].inverted_tenants.add(None)  # type: ignore[arg-type]  # a candidate that disagrees
    shadow = train(world)
    registry.set_shadow(shadow.version_id, True, actor="test")
    answers = [predict(world, "t1", float(x), f"s{i}", at=NOW - timedelta(days=2))
               for i, x in enumerate(np.linspace(-2, 2, 20))]
    assert {a["label"] for a in answers} == {champion.label} and {a["variant"] for a in answers} == {"champion"}
    shadow_rows = [r for r in world["log"].rows if r["variant"] == "shadow"]
    assert len(shadow_rows) == 20 and {r["model_version"] for r in shadow_rows} == {shadow.label}
    assert all(world["log"].get(None, "t1", a["id"])["variant"] == "champion" for a in answers)
    metrics = track_outcomes(world["tx"], world["outcomes"], world["log"], NOW)["metrics"]
    assert {m["model_label"] for m in metrics} == {champion.label, shadow.label}  # each judged live
    registry.activate(shadow.version_id, actor="test")  # promoting a shadow ends its shadow role
    assert registry.get(shadow.version_id).shadow is False


def test_a_warm_process_notices_a_tampered_artifact_within_the_refresh_interval(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.logs import configure_logging

    configure_logging()
    now = [0.0]
    world["models"] = ServingModels(world["registry"], refresh_seconds=60, clock=lambda: now[0])
    own, shared = train(world, "t1"), train(world)
    world["registry"].activate(own.version_id, actor="t")
    world["registry"].activate(shared.version_id, actor="t")
    assert predict(world, "t1", 0.7, "r1")["scope"] == "tenant"
    original = world["store"].get(own.artifact_key)
    world["store"].put(own.artifact_key, b'{"slope": 40.0, "offset": 0.0}')  # swapped in the store
    now[0] = 59.0
    assert predict(world, "t1", 0.7, "r2")["scope"] == "tenant"  # the verified copy, until the refresh
    assert world["models"].rejected() == []
    now[0] = 61.0
    assert predict(world, "t1", 0.7, "r3")["scope"] == "global"
    assert [v.version_id for v in world["models"].rejected()] == [own.version_id]
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "security.artifact_rejected" and line["version_id"] == own.version_id
               for line in logged)
    # The signed bytes put back: the next refresh serves the tenant's model again, nothing reported.
    world["store"].put(own.artifact_key, original)
    now[0] = 200.0
    assert predict(world, "t1", 0.7, "r4")["scope"] == "tenant"
    assert world["models"].rejected() == []


def test_concurrent_first_requests_share_one_build_and_all_get_the_model(world: dict[str, Any]) -> None:
    version = train(world, "t1")
    world["registry"].activate(version.version_id, actor="t")
    builds: list[int] = []
    started = threading.Barrier(8)

    def slow_build(data: bytes) -> Any:
        builds.append(1)
        time.sleep(0.05)  # long enough for every thread to arrive while the first one builds
        return TOY.load(data)

    def first_request(_: int) -> Any:
        started.wait()
        return world["models"].load(version, slow_build)

    with ThreadPoolExecutor(max_workers=8) as pool:
        models = list(pool.map(first_request, range(8)))
    assert len(builds) == 1 and all(model is models[0] for model in models)
    assert world["models"].rejected() == []


def test_a_training_job_delivered_twice_or_fanned_out_again_retrains_its_scope_once(world: dict[str, Any]) -> None:
    registry = world["registry"]

    def retrain_scope(tenant: str | None) -> dict[str, Any]:
        return retrain(TOY, world["source"], registry, world["locks"], tenant_id=tenant, now=NOW)

    def last_retrained(kind: str, tenant: str | None) -> datetime | None:
        return registry.last_recorded_at(kind, tenant, RETRAIN_DECISIONS)

    sent: list[str] = []

    def send_then_fail(body: str) -> None:
        if sent:
            raise DependencyUnavailable("queue q unreachable: connection refused")
        sent.append(body)

    asked = datetime.now(UTC)
    with pytest.raises(DependencyUnavailable, match="1 of 2 toy training jobs queued, then: queue q unreachable"):
        fan_out("toy", [None, "t1"], send=send_then_fail, retrain=retrain_scope, requested_at=asked)
    # The schedule's retry sends the whole fan-out again: the global job is queued twice.
    assert fan_out("toy", [None, "t1"], send=sent.append, retrain=retrain_scope, requested_at=asked) == {
        "queued": 2, "kind": "toy"}
    results = [run_job(parse_job(body), {"toy": retrain_scope}, last_retrained) for body in sent]
    assert [(r["scope"], r.get("duplicate", False)) for r in results] == [
        ("global", False), ("global", True), ("t1", False)]
    decisions = [r for r in registry.audit_trail() if r["action"] in RETRAIN_DECISIONS and r["tenant_id"] is None]
    assert len(decisions) == 1
    # A job asked for well after the last retrain runs; so does a message from before jobs were dated.
    later = TrainingJob(kind="toy", requested_at=asked + 2 * DUPLICATE_WINDOW)
    assert "duplicate" not in run_job(later, {"toy": retrain_scope}, last_retrained)
    assert "duplicate" not in run_job(parse_job('{"kind": "toy"}'), {"toy": retrain_scope}, last_retrained)


def test_a_second_in_process_retrain_run_beside_one_is_skipped_not_run_again(world: dict[str, Any]) -> None:
    """Each scope's lock alone let a second run retrain every scope again once the first had
    released it: two identical candidates a scope."""
    registry = world["registry"]
    trained: list[str | None] = []

    def retrain_scope(tenant: str | None) -> dict[str, Any]:
        trained.append(tenant)
        return retrain(TOY, world["source"], registry, world["locks"], tenant_id=tenant, now=NOW)

    with world["locks"].exclusive("retrain-run/toy"):  # a run in progress
        skipped = fan_out("toy", [None, "t1"], send=None, retrain=retrain_scope, requested_at=NOW,
                          locks=world["locks"])
    assert skipped == {"skipped": "another toy retrain run is running"} and trained == []
    ran = fan_out("toy", [None, "t1"], send=None, retrain=retrain_scope, requested_at=NOW, locks=world["locks"])
    assert set(ran["ran_in_process"]) == {"global", "t1"} and trained == [None, "t1"]
