"""A tenant's capture settings: threshold, daily capture budget, plate countries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from shared.errors import FieldProblem, InvalidInput
from shared.ocr.normalise import PLATE_FORMATS
from shared.ocr.readings_repository import OcrSettings
from shared.ocr.services import OcrServices

# The words that reset a setting to its default; a blank value (an empty shell variable, say) does not.
_CLEAR = {"default", "none"}
# The budget's column is a PostgreSQL integer.
MAX_DAILY_BUDGET = 2**31 - 1
Number = TypeVar("Number", int, float)


def _bounded(text: str, field: str, parse: Callable[[str], Number], high: int, what: str) -> Number | None:
    """A setting's value from 0 to `high` (`default`, `none` or nothing: unset), or a refusal naming it."""
    if text.lower() in _CLEAR:
        return None
    try:
        value = parse(text)
    except ValueError:
        raise InvalidInput(f"{field} {text[:40]!r} is not {what}", [FieldProblem(field, f"not {what}")]) from None
    if not 0 <= value <= high:  # NaN fails too
        raise InvalidInput(f"{field} {text[:40]} is out of range", [FieldProblem(field, f"must be from 0 to {high}")])
    return value


def _parsed(settings: OcrSettings, threshold: str | None, daily_budget: str | None,
            countries: str | None) -> OcrSettings:
    if threshold is not None:
        settings = replace(settings, capture_threshold=_bounded(threshold, "threshold", float, 1, "a number"))
    if daily_budget is not None:
        settings = replace(settings, daily_capture_budget=_bounded(daily_budget, "daily_budget", int, MAX_DAILY_BUDGET,
                                                                   "a whole number"))
    if countries is not None:
        # Each country once, in the order first named.
        chosen = () if countries.lower() in _CLEAR else tuple(dict.fromkeys(
            c.strip().upper() for c in countries.split(",") if c.strip()))
        if countries.lower() not in _CLEAR and not chosen:
            raise InvalidInput("name at least one plate country, or default",
                               [FieldProblem("countries", "no country named")])
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
