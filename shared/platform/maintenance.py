"""Housekeeping jobs that every deployment runs."""

from __future__ import annotations

from typing import Any

from shared.context import AppContext
from shared.platform.jobs import job


@job("verify-active-models", "rate(1 hour)", "Fetch and verify every active model artifact")
def verify_active_models(context: AppContext) -> dict[str, Any]:
    """Catches a tampered or missing artifact before a cold start trips over it."""
    from shared.errors import MlstackError

    checked, failed = 0, []
    for version in context.registry.list_versions():
        if version.status != "active":
            continue
        checked += 1
        try:
            context.registry.load_verified(version)
        except MlstackError as exc:
            failed.append({"version_id": version.version_id, "label": version.label, "error": exc.message})
    return {"checked": checked, "failed": failed}
