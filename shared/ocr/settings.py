"""A tenant's capture settings: threshold, daily capture budget, plate countries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.errors import FieldProblem, InvalidInput
from shared.ocr.normalise import PLATE_FORMATS
from shared.ocr.readings_repository import OcrSettings
from shared.ocr.services import OcrServices

_CLEAR = {"default", "none", ""}


def _parsed(settings: OcrSettings, threshold: str | None, daily_budget: str | None,
            countries: str | None) -> OcrSettings:
    try:
        if threshold is not None:
            value = None if threshold.lower() in _CLEAR else float(threshold)
            if value is not None and not 0 <= value <= 1:
                raise ValueError("threshold")
            settings = replace(settings, capture_threshold=value)
        if daily_budget is not None:
            budget = None if daily_budget.lower() in _CLEAR else int(daily_budget)
            if budget is not None and budget < 0:
                raise ValueError("daily_budget")
            settings = replace(settings, daily_capture_budget=budget)
    except ValueError:
        raise InvalidInput("threshold must be in [0, 1] and the daily budget a count",
                           [FieldProblem("threshold" if threshold else "daily_budget", "out of range")]) from None
    if countries is not None:
        chosen = () if countries.lower() in _CLEAR else tuple(c.strip().upper() for c in countries.split(",") if c.strip())
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
