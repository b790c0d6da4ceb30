"""A tenant's capture settings: threshold, daily capture budget, plate countries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.errors import FieldProblem, InvalidInput
from shared.ocr.normalise import PLATE_FORMATS
from shared.ocr.readings_repository import OcrSettings
from shared.ocr.services import OcrServices

_CLEAR = {"default", "none", ""}


# The budget's column is a PostgreSQL integer.
MAX_DAILY_BUDGET = 2**31 - 1


def _threshold(text: str) -> float | None:
    if text.lower() in _CLEAR:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"threshold {text[:40]!r} is not a number", [FieldProblem("threshold", "not a number")]) from None
    if not 0 <= value <= 1:  # NaN fails too
        raise InvalidInput(f"threshold {text[:40]} is out of range", [FieldProblem("threshold", "must be from 0 to 1")])
    return value


def _daily_budget(text: str) -> int | None:
    if text.lower() in _CLEAR:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"daily budget {text[:40]!r} is not a whole number",
                           [FieldProblem("daily_budget", "not a whole number")]) from None
    if not 0 <= value <= MAX_DAILY_BUDGET:
        raise InvalidInput(f"daily budget {text[:40]} is out of range",
                           [FieldProblem("daily_budget", f"must be from 0 to {MAX_DAILY_BUDGET}")])
    return value


def _parsed(settings: OcrSettings, threshold: str | None, daily_budget: str | None,
            countries: str | None) -> OcrSettings:
    if threshold is not None:
        settings = replace(settings, capture_threshold=_threshold(threshold))
    if daily_budget is not None:
        settings = replace(settings, daily_capture_budget=_daily_budget(daily_budget))
    if countries is not None:
        # Each country once, in the order first named.
        chosen = () if countries.lower() in _CLEAR else tuple(dict.fromkeys(
            c.strip().upper() for c in countries.split(",") if c.strip()))
        unknown = sorted(set(chosen) - set(PLATE_FORMATS))
        if unknown:
            raise InvalidInput(f"unknown plate countries {', '.join(unknown)}; known: {', '.join(sorted(PLATE_FORMATS))}",
                               [FieldProblem("countries", "unknown")])
        settings = replace(settings, plate_countries=chosen)
    return settings


def change_settings(services: OcrServices, tenant_id: str, *, threshold: str | None = None,
                    daily_budget: str | None = None, countries: str | None = None) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        settings = _parsed(services.readings.settings(tx, tenant_id), threshold, daily_budget, countries)
        if (threshold, daily_budget, countries) != (None, None, None):
            services.readings.save_settings(tx, tenant_id, settings)
    return {"capture_threshold": settings.capture_threshold, "daily_capture_budget": settings.daily_capture_budget,
            "plate_countries": list(settings.countries)}
