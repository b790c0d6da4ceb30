"""The model registry against real PostgreSQL and LocalStack S3."""

from __future__ import annotations

import os
import pickle
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.signing import ArtifactSigner
from shared.context import AppContext
from shared.errors import ArtifactRejected, Conflict, NotFound

pytestmark = pytest.mark.integration


def _register(context: AppContext, kind: str = "conflict", tenant_id: str | None = None, payload: bytes = b"{}") -> Any:
    return context.registry.register(
        kind=kind, tenant_id=tenant_id, artifact=payload, artifact_format="json",
        manifest={"feature_names": ["a", "b"], "metrics": {"roc_auc": 0.8}}, actor="test",
    )


def _active_count(context: AppContext, kind: str = "conflict") -> int:
    with context.database.transaction() as tx:
        return tx.fetch_value(
            "SELECT count(*) FROM model_versions WHERE kind = :k AND status = 'active' AND tenant_id IS NULL",
            k=kind,
        )


class _CreatesFileWhenUnpickled:
    """A pickle payload that runs os.system-like code on load: what a tampered artifact looks like."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "pwned"))


def test_versions_number_up_and_start_as_candidates(context: AppContext) -> None:
    first, second = _register(context), _register(context)
    assert (first.version, second.version) == (1, 2)
    assert first.status == second.status == "candidate"
    assert context.object_store.get(first.artifact_key) == b"{}"


def test_activation_retires_the_previous_and_rollback_restores_it(context: AppContext) -> None:
    v1, v2, v3 = _register(context), _register(context), _register(context)
    context.registry.activate(v1.version_id, actor="t")
    context.registry.activate(v2.version_id, actor="t")
    context.registry.activate(v3.version_id, actor="t")
    assert context.registry.active_version("conflict", None).version_id == v3.version_id
    assert context.registry.rollback("conflict", None, actor="t").version_id == v2.version_id
    assert context.registry.rollback("conflict", None, actor="t").version_id == v1.version_id
    with pytest.raises(Conflict):
        context.registry.rollback("conflict", None, actor="t")
    assert context.registry.get(v3.version_id).status == "retired"
    actions = [row["action"] for row in context.registry.audit_trail()]
    assert actions.count("rollback") == 2 and actions.count("activate") == 3


def test_concurrent_activations_and_rollbacks_keep_exactly_one_active(context: AppContext) -> None:
    versions = [_register(context) for _ in range(4)]
    context.registry.activate(versions[0].version_id, actor="t")
    errors: list[BaseException] = []
    seen_counts: list[int] = []

    def worker(seed: int) -> None:
        # Each thread has its own connection, as two Lambda instances would.
        own = AppContext(context.settings)
        rng = random.Random(seed)
        try:
            for _ in range(25):
                try:
                    if rng.random() < 0.6:
                        own.registry.activate(rng.choice(versions).version_id, actor=f"thread-{seed}")
                    else:
                        own.registry.rollback("conflict", None, actor=f"thread-{seed}")
                except Conflict:
                    pass  # already active / nothing to roll back: a refusal, not a corruption
                seen_counts.append(_active_count(own))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.database.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen_counts) == 50
    assert set(seen_counts) == {1}
    assert _active_count(context) == 1


def test_the_payload_really_creates_a_file_when_unpickled(tmp_path: Path) -> None:
    # Control for the two tests below: without the registry's check, loading runs the payload.
    marker = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(_CreatesFileWhenUnpickled(marker)))
    assert marker.read_text() == "pwned"


def test_tampered_pickle_is_refused_and_never_unpickled(context: AppContext, tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    version = context.registry.register(
        kind="fraud", tenant_id=None, artifact=pickle.dumps({"weights": [1, 2]}), artifact_format="joblib",
        manifest={}, actor="test",
    )
    # An attacker with write access to the bucket swaps the bytes for a payload.
    context.object_store.put(version.artifact_key, pickle.dumps(_CreatesFileWhenUnpickled(marker)))
    with pytest.raises(ArtifactRejected):
        context.registry.load_verified(version)
    assert not marker.exists()
    audit = context.registry.audit_trail(version.version_id)
    assert audit[0]["action"] == "artifact_rejected"


def test_valid_pickle_signed_with_another_key_is_refused(context: AppContext, tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    payload = pickle.dumps(_CreatesFileWhenUnpickled(marker))
    version = context.registry.register(
        kind="fraud", tenant_id=None, artifact=payload, artifact_format="joblib", manifest={}, actor="test"
    )
    # Re-sign the row with a key that is not the deployment's: digest is right, signature is not.
    digest, forged = ArtifactSigner(os.urandom(32)).sign(version.artifact_key, payload)
    with context.database.transaction() as tx:
        tx.execute(
            "UPDATE model_versions SET artifact_hmac = :h WHERE version_id = CAST(:id AS uuid)",
            h=forged, id=version.version_id,
        )
    with pytest.raises(ArtifactRejected, match="signature"):
        context.registry.load_verified(context.registry.get(version.version_id))
    assert not marker.exists()


def test_intact_artifact_loads(context: AppContext) -> None:
    version = _register(context, payload=b'{"coef": [0.5]}')
    assert context.registry.load_verified(version) == {"coef": [0.5]}


def test_tenant_models_are_invisible_to_other_tenants(context: AppContext) -> None:
    acme = context.tenants.create_tenant("acme", "Acme")
    globex = context.tenants.create_tenant("globex", "Globex")
    own = _register(context, kind="fraud", tenant_id=acme.tenant_id)
    shared_model = _register(context, kind="conflict")
    assert context.registry.get(own.version_id, visible_to_tenant=acme.tenant_id).version_id == own.version_id
    assert context.registry.get(shared_model.version_id, visible_to_tenant=globex.tenant_id)
    with pytest.raises(NotFound):
        context.registry.get(own.version_id, visible_to_tenant=globex.tenant_id)
    listed = {v.version_id for v in context.registry.list_versions(tenant_id=globex.tenant_id)}
    assert listed == {shared_model.version_id}
    assert own.artifact_key.startswith(f"tenants/{acme.tenant_id}/")


def test_tenant_active_version_overrides_global(context: AppContext) -> None:
    acme = context.tenants.create_tenant("acme", "Acme")
    global_v = _register(context)
    tenant_v = _register(context, tenant_id=acme.tenant_id)
    context.registry.activate(global_v.version_id, actor="t")
    assert context.registry.active_version("conflict", acme.tenant_id).version_id == global_v.version_id
    context.registry.activate(tenant_v.version_id, actor="t")
    assert context.registry.active_version("conflict", acme.tenant_id).version_id == tenant_v.version_id
    assert context.registry.active_version("conflict", None).version_id == global_v.version_id


def test_challenger_must_be_a_candidate_and_is_unique(context: AppContext) -> None:
    champion, first, second = _register(context), _register(context), _register(context)
    context.registry.activate(champion.version_id, actor="t")
    with pytest.raises(Conflict):
        context.registry.set_challenger(champion.version_id, 0.2, actor="t")
    context.registry.set_challenger(first.version_id, 0.2, actor="t")
    context.registry.set_challenger(second.version_id, 0.1, actor="t")
    challenger = context.registry.challenger_for("conflict", None)
    assert challenger is not None and challenger.version_id == second.version_id
    assert context.registry.get(first.version_id).challenger_share is None


def test_a_candidate_is_a_challenger_or_a_shadow_not_both(context: AppContext) -> None:
    """As both it was logged twice for the requests it answered (a probe found 4 challenger and 10
    shadow rows for one version); each role is refused while the other is on, and allowed once off."""
    champion, candidate = _register(context), _register(context)
    context.registry.activate(champion.version_id, actor="t")
    context.registry.set_challenger(candidate.version_id, 0.5, actor="t")
    with pytest.raises(Conflict, match="already the challenger"):
        context.registry.set_shadow(candidate.version_id, True, actor="t")
    context.registry.set_challenger(candidate.version_id, None, actor="t")
    context.registry.set_shadow(candidate.version_id, True, actor="t")
    with pytest.raises(Conflict, match="already the shadow"):
        context.registry.set_challenger(candidate.version_id, 0.2, actor="t")
    stored = context.registry.get(candidate.version_id)
    assert stored.shadow and stored.challenger_share is None


def test_activation_reaches_a_warm_cache_after_the_refresh_interval(context: AppContext) -> None:
    from shared.platform.serving_cache import ServingModels

    now = [0.0]
    cache = ServingModels(context.registry, refresh_seconds=60, clock=lambda: now[0])
    v1, v2 = _register(context), _register(context)
    context.registry.activate(v1.version_id, actor="t")
    assert cache.choice("conflict", None).champion.version_id == v1.version_id
    context.registry.activate(v2.version_id, actor="t")
    now[0] = 59.0
    assert cache.choice("conflict", None).champion.version_id == v1.version_id
    now[0] = 61.0
    assert cache.choice("conflict", None).champion.version_id == v2.version_id


def test_a_validly_signed_artifact_copied_into_another_versions_row_is_refused(context: AppContext) -> None:
    """Someone with write access to the database copies tenant A's signed artifact (key, digest,
    signature) into tenant B's version: the signature holds, the place does not."""
    acme = context.tenants.create_tenant("acme", "Acme").tenant_id
    globex = context.tenants.create_tenant("globex", "Globex").tenant_id
    theirs = context.registry.register(kind="conflict", tenant_id=acme, artifact=b'{"w": 1}', artifact_format="json",
                                       manifest={}, actor="test")
    mine = context.registry.register(kind="conflict", tenant_id=globex, artifact=b'{"w": 2}', artifact_format="json",
                                     manifest={}, actor="test")
    assert context.registry.load_verified(mine) == {"w": 2}
    with context.database.transaction() as tx:
        tx.execute("UPDATE model_versions SET artifact_key = :k, artifact_sha256 = :d, artifact_hmac = :h"
                   " WHERE version_id = CAST(:id AS uuid)", k=theirs.artifact_key, d=theirs.artifact_sha256,
                   h=theirs.artifact_hmac, id=mine.version_id)
    with pytest.raises(ArtifactRejected, match="not in the place"):
        context.registry.load_verified(context.registry.get(mine.version_id))
    assert context.registry.audit_trail(mine.version_id)[0]["action"] == "artifact_rejected"
