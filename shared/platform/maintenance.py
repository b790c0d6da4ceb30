"""Housekeeping that every deployment runs, whatever loops it has."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.errors import ArtifactRejected, MlstackError
from shared.platform.jobs import Job, Slice

if TYPE_CHECKING:
    from shared.context import AppContext


def verify_active_models(context: AppContext) -> dict[str, Any]:
    """Fetch and verify every artifact in use (active, a challenger answering a share, a shadow
    scored on every request): catches a tampered or missing one before a cold start trips over
    it. Any failure fails the run (logged as job.failed with the versions; the job's errors alarm
    and EventBridge's retry see it), not just a line in its result."""
    checked, failed = 0, []
    for version in context.registry.list_versions():
        if not (version.status == "active" or version.challenger_share or version.shadow):
            continue
        checked += 1
        try:
            context.registry.load_verified_bytes(version)
        except MlstackError as exc:
            failed.append(f"{version.label} ({version.version_id}): {exc.message}")
    if failed:
        raise ArtifactRejected(f"{len(failed)} of {checked} artifacts in use failed: " + "; ".join(failed))
    return {"checked": checked, "failed": []}


PLATFORM_SLICE = Slice(
    name="platform",
    jobs=(Job("verify-active-models", "rate(1 hour)", "Fetch and verify every active model artifact",
              verify_active_models),),
    routes_module="functions.api_models",
)
