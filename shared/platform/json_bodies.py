"""Validating a JSON request body with JSON's own types.

Pydantic's default (lax) mode converts: "yes", "on" and 1 become true, "51" becomes 51.0, an
integer becomes a time (seconds since 1970). Bulk-import files need that (a CSV cell is text), a
JSON body does not: there a boolean is `true` or `false`, a number is a number and a time is an ISO
8601 string, and anything else is a 400 naming the field. Pydantic's strict mode over JSON input
is exactly that rule (a time or date as a string stays accepted), so a decoded body is validated as
the JSON text it came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


def validate_json_body(model: type[Model], payload: Any, context: Mapping[str, Any] | None = None) -> Model:
    """`payload` (decoded from a request's JSON) as `model`, typed as JSON types it."""
    return model.model_validate_json(json.dumps(payload), strict=True, context=context)
