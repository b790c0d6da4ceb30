"""Is this deployment able to serve? Database, object store, and which models are active."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.context import AppContext
from shared.errors import MlstackError, SchemaMissing


def check_health(context: AppContext) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        context.database.ping()
        checks["database"] = {"ok": True}
    except (MlstackError, OSError) as exc:
        healthy = False
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        context.object_store.ping()
        checks["object_store"] = {"ok": True}
    except (MlstackError, OSError) as exc:
        healthy = False
        checks["object_store"] = {"ok": False, "error": type(exc).__name__}
    active: list[str] = []
    if checks["database"]["ok"]:
        try:
            active = context.registry.active_kinds()
        except MlstackError as exc:
            # Before migrations ran there is no registry table; health says so instead of failing.
            healthy = False
            # Public: the fix when the schema is missing, else only the error's code (no internals).
            checks["database"] = {"ok": False, "error": exc.message if isinstance(exc, SchemaMissing) else exc.code}
    # Artifacts this process refused (tampered or unusable) among the versions chosen to serve:
    # predictions fall back meanwhile, and the operator must act. Kind and scope only: public.
    serving = context.loaded_serving_models()
    rejected = serving.rejected() if serving is not None else []
    refused = sorted({(version.kind, version.scope) for version in rejected})
    checks["model_artifacts"] = {"ok": not refused, "rejected": [{"kind": k, "scope": s} for k, s in refused]}
    healthy = healthy and not rejected
    body = {"status": "ok" if healthy else "degraded", "checks": checks, "active_models": active}
    return healthy, body
