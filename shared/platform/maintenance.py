"""Housekeeping that every deployment runs, whatever loops it has."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.errors import MlstackError
from shared.platform.jobs import Job, Slice

if TYPE_CHECKING:
    from shared.context import AppContext


def verify_active_models(context: AppContext) -> dict[str, Any]:
    """Fetch and verify every active artifact: catches a tampered or missing one before a cold
    start trips over it."""
    checked, failed = 0, []
    for version in context.registry.list_versions():
        if version.status != "active":
            continue
        checked += 1
        try:
            context.registry.load_verified_bytes(version)
        except MlstackError as exc:
            failed.append({"version_id": version.version_id, "label": version.label, "error": exc.message})
    return {"checked": checked, "failed": failed}


PLATFORM_SLICE = Slice(
    name="platform",
    jobs=(Job("verify-active-models", "rate(1 hour)", "Fetch and verify every active model artifact",
              verify_active_models),),
    routes_module="functions.api_models",
)
