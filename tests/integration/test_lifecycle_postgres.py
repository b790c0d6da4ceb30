"""The shared lifecycle on the real PostgreSQL path: scope per tenant, shadow rows and their live
metrics, the registry repository against its fake, and the retrain lock across connections."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.db import Database
from shared.conflict.demo_data import DemoConfig, generate_sync_history
from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import store_sync_events
from shared.conflict.outcomes import track_conflict_outcomes
from shared.conflict.prediction import ConflictPredictionRequest, get_prediction, predict_conflict
from shared.conflict.training import train_candidate
from shared.context import AppContext
from shared.demo import seed_sync_history
from shared.errors import Conflict
from shared.platform.locks import DatabaseLocks
from shared.platform.registry_repository import (
    ANY,
    InMemoryRegistryRepository,
    NewVersion,
    PostgresRegistryRepository,
    RegistryRepository,
)

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
SMALL = DemoConfig(tenants=("acme", "globex"), users_per_tenant=25, entities_per_tenant=120, days=30, end=NOW)


def seed(context: AppContext) -> dict[str, str]:
    tenant_ids = {slug: context.tenants.create_tenant(slug, slug).tenant_id for slug in SMALL.tenants}
    seed_sync_history(context, tenant_ids, generate_sync_history(SMALL))
    return tenant_ids


def ask(context: AppContext, tenant: str, entity: str, request_id: str, at: datetime = NOW) -> dict[str, Any]:
    request = ConflictPredictionRequest(domain="voice", user_id="u1", entity_type="recording", entity_id=entity)
    return predict_conflict(context, tenant, request, request_id, now=at)


def test_a_tenant_model_serves_its_tenant_and_the_global_one_the_others(context: AppContext) -> None:
    tenants = seed(context)
    global_model = train_candidate(context, end=NOW).version
    own_model = train_candidate(context, end=NOW, tenant_id=tenants["acme"]).version
    assert own_model.tenant_id == tenants["acme"] and own_model.manifest["scope"] == "tenant"
    context.registry.activate(global_model.version_id, actor="test")
    context.registry.activate(own_model.version_id, actor="test")
    acme, globex = ask(context, tenants["acme"], "e1", "q1"), ask(context, tenants["globex"], "e1", "q2")
    assert (acme["scope"], acme["model_version"]) == ("tenant", own_model.label)
    assert (globex["scope"], globex["model_version"]) == ("global", global_model.label)
    assert get_prediction(context, tenants["acme"], acme["prediction_id"])["scope"] == "tenant"
    # The tenant's own artifact tampered: at the next refresh (at once here), the same warm cache
    # falls back to the global model.
    context.object_store.put(own_model.artifact_key, b'{"serving_form": "x"}')
    assert ask(context, tenants["acme"], "e1", "q3")["scope"] == "global"


def test_a_shadow_is_logged_beside_every_answer_and_measured_live(context: AppContext) -> None:
    tenants = seed(context)
    champion = train_candidate(context, end=NOW).version
    context.registry.activate(champion.version_id, actor="test")
    shadow = train_candidate(context, end=NOW).version
    context.registry.set_shadow(shadow.version_id, True, actor="test")
    asked = NOW - timedelta(hours=30)
    answers = [ask(context, tenants["acme"], f"s{i}", f"r{i}", asked) for i in range(6)]
    assert {a["variant"] for a in answers} == {"champion"}
    with context.database.transaction() as tx:
        store_sync_events(tx, tenants["acme"], [SyncEvent(
            client_event_id="later", user_id="u1", device_id="d", domain="voice", entity_type="recording",
            entity_id="s0", fields_changed=["notes"], received_at=asked + timedelta(hours=1), conflicted=True,
            conflict_fields=["notes"])], NOW)
        rows = tx.fetch_all("SELECT variant, model_label, request_id FROM conflict_predictions ORDER BY request_id")
    assert [r["variant"] for r in rows].count("shadow") == 6
    assert {r["model_label"] for r in rows if r["variant"] == "shadow"} == {shadow.label}
    tracked = track_conflict_outcomes(context, now=NOW)
    assert tracked["labelled"] == 12
    by_label = {(m["model_label"], m["window_days"]): m for m in tracked["metrics"]}
    assert by_label[(shadow.label, 7)]["positives"] == 1 and by_label[(shadow.label, 7)]["pr_auc"] is not None
    with pytest.raises(Conflict):
        context.registry.set_shadow(champion.version_id, True, actor="test")  # only a candidate


Scenario = Callable[[RegistryRepository], list[Any]]


def _scenario(repository: RegistryRepository) -> list[Any]:
    """One script of registry operations; PostgreSQL and the fake must give the same trace."""
    def new(tenant: str | None) -> str:
        return repository.insert_candidate(NewVersion("toy", tenant, f"k{secrets.token_hex(3)}", "json", "0" * 64,
                                                      "1" * 64, {}), actor="t").version_id

    trace: list[Any] = []
    first, second, third, fourth = new(None), new(None), new(None), new(None)
    trace.append([repository.get(v).version for v in (first, second, third, fourth)])
    repository.activate(first, actor="t", reason="", expected_active_id=None)
    try:
        repository.activate(second, actor="t", reason="", expected_active_id=None)
    except Conflict:
        trace.append("stale compare-and-swap refused")
    repository.activate(second, actor="t", reason="", expected_active_id=first)
    repository.set_challenger(third, 0.25, actor="t")
    try:
        repository.set_shadow(third, True, actor="t")
    except Conflict:
        trace.append("a challenger is not also the shadow")
    repository.set_shadow(fourth, True, actor="t")
    scope = repository.in_scope("toy", None)
    trace.append((scope.active.version, scope.challenger.version, scope.shadow.version))  # type: ignore[union-attr]
    trace.append(repository.rollback("toy", None, actor="t", reason="").version)
    try:
        repository.rollback("toy", None, actor="t", reason="")
    except Conflict:
        trace.append("nothing to roll back to")
    repository.activate(third, actor="t", reason="", expected_active_id=ANY)
    scope = repository.in_scope("toy", None)
    trace.append((scope.active.version, scope.challenger, scope.shadow and scope.shadow.version))  # type: ignore[union-attr]
    trace.append([(v.version, v.status) for v in repository.list_versions(kind="toy", tenant_id=None,
                                                                           include_global=True)])
    trace.append(repository.active_kinds())
    return trace


def test_the_in_memory_registry_behaves_like_postgresql(context: AppContext) -> None:
    assert _scenario(PostgresRegistryRepository(context.database)) == _scenario(InMemoryRegistryRepository())


def test_the_retrain_lock_excludes_another_connection(clean_database: Database, database_url: str) -> None:
    other = Database(database_url)
    try:
        with DatabaseLocks(clean_database).exclusive("retrain/toy/global") as taken:
            assert taken
            with DatabaseLocks(other).exclusive("retrain/toy/global") as also:
                assert not also
            with DatabaseLocks(other).exclusive("retrain/toy/t1") as another_scope:
                assert another_scope
        with DatabaseLocks(other).exclusive("retrain/toy/global") as after:
            assert after
    finally:
        other.close()
