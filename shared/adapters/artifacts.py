"""Turn verified artifact bytes into objects. Only ever called after ArtifactSigner.verify.

Serving formats need nothing beyond the standard library here: json is decoded, ubjson (XGBoost's
binary model format) stays bytes for its kind to load; joblib (pickle) is for training-side
artifacts and imports joblib only when such an artifact is loaded.
"""

from __future__ import annotations

import io
import json
from typing import Any

from shared.errors import ArtifactRejected

KNOWN_FORMATS = ("json", "ubjson", "joblib")


def deserialize(artifact_format: str, data: bytes) -> Any:
    if artifact_format == "json":
        return json.loads(data.decode("utf-8"))
    if artifact_format == "ubjson":
        return data
    if artifact_format == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    raise ArtifactRejected(f"unknown artifact format {artifact_format!r}")
