"""The role a dashboard shows for each model version: champion, challenger, shadow, or its status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.platform.registry import ModelVersion
from shared.platform.roles import serving_role


def version(status: str, challenger_share: float | None = None, shadow: bool = False) -> ModelVersion:
    return ModelVersion(version_id="v", kind="conflict", tenant_id=None, version=1, status=status, artifact_key="k",
                        artifact_format="json", artifact_sha256="s", artifact_hmac="h", manifest={},
                        challenger_share=challenger_share, replaced_version_id=None,
                        created_at=datetime(2026, 1, 1, tzinfo=UTC), activated_at=None, retired_at=None, shadow=shadow)


@pytest.mark.parametrize(("status", "share", "shadow", "role"), [
    ("active", None, False, "champion"),
    ("candidate", 0.1, False, "challenger"),
    ("candidate", None, True, "shadow"),
    ("candidate", None, False, "candidate"),
    ("retired", None, False, "retired"),
])
def test_each_version_gets_the_role_it_plays(status: str, share: float | None, shadow: bool, role: str) -> None:
    assert serving_role(version(status, share, shadow)) == role
