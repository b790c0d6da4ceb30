"""A model version's part in serving, in the words the dashboards use."""

from __future__ import annotations

from shared.platform.registry import ModelVersion


def serving_role(version: ModelVersion) -> str:
    """champion = the active version; shadow = a candidate scored alongside without answering;
    challenger = a candidate answering a share of requests; else the registry's status."""
    if version.status == "active":
        return "champion"
    if version.shadow:
        return "shadow"
    if version.challenger_share:
        return "challenger"
    return version.status
