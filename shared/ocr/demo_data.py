"""Demo OCR histories: meters and gates with realistic OCR confusions, the truth of every reading,
and the corrections a seed-era loop would have recorded.

Meters are cumulative (kWh with one decimal, m3 with three), read every one to seven days at a
consumption that varies by day and has real spikes (not errors); some meters are replaced (the new
one starts near zero; most replacements are recorded by a METER_REPLACED correction). Gates see
regular plates (few, often) and visitors (once). OCR errors: 0/O/8/B, 1/I/7, 5/S and 2/Z
confusions, dropped or doubled digits, a moved decimal point, swapped neighbours. Their confidence
is a mixture: many are unsure, a good share are confident mistakes; correct readings are mostly
confident but not all. Corrections: most unsure errors (the seed captured them), some confident
ones (users noticed), never all.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DIGIT_CONFUSIONS = {"0": "8O6D", "1": "7I", "2": "Z7", "3": "8", "5": "S6", "6": "58G", "7": "1", "8": "0B36",
                    "9": "8"}
LETTER_CONFUSIONS = {"O": "0DQ", "D": "O0", "B": "8", "I": "1", "S": "5", "Z": "2", "G": "6", "Q": "O"}


@dataclass(frozen=True)
class DemoOcrConfig:
    tenant: str = "demo"
    meters: int = 120
    gates: int = 5
    plate_reads_per_gate_per_day: int = 50
    days: int = 150
    end: datetime = datetime(2026, 11, 30, tzinfo=UTC)
    error_rate: float = 0.06
    seed: int = 7
    # Before each meter's and gate's id: another history of the same tenant (the demo's live
    # replay) must not continue a meter of the seeded one with readings of its own.
    source_prefix: str = ""


@dataclass(frozen=True)
class DemoReading:
    record: dict[str, Any]  # the intake record
    true_text: str
    is_error: bool
    replaced: bool  # the first reading of a replacement meter


def _confidence(rng: random.Random, is_error: bool) -> float:
    if is_error:
        value = rng.betavariate(4, 3) if rng.random() < 0.55 else rng.betavariate(12, 2.5)
    else:
        value = rng.betavariate(14, 2) if rng.random() < 0.9 else rng.betavariate(5, 2.5)
    return round(min(max(value, 0.01), 0.999), 3)


def _garble(rng: random.Random, text: str, numeric: bool) -> str:
    """One realistic OCR mistake on `text` (never returns it unchanged)."""
    positions = [i for i, c in enumerate(text) if c.isalnum()]
    for _ in range(20):
        kind = rng.choice(("confuse", "confuse", "confuse", "drop", "double", "swap", "point" if numeric else "confuse"))
        i = rng.choice(positions)
        if kind == "confuse":
            options = DIGIT_CONFUSIONS.get(text[i], "") or LETTER_CONFUSIONS.get(text[i], "")
            if not options:
                continue
            out = text[:i] + rng.choice(options) + text[i + 1:]
        elif kind == "drop":
            out = text[:i] + text[i + 1:]
        elif kind == "double":
            out = text[:i] + text[i] + text[i:]
        elif kind == "swap":
            if i + 1 >= len(text) or not text[i + 1].isalnum():
                continue
            out = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        else:
            if "." not in text:
                continue
            digits = text.replace(".", "")
            point = text.index(".") + rng.choice((-1, 1))
            out = digits[:point] + "." + digits[point:] if 0 < point < len(digits) else ""
        if out and out != text:
            return out
    return text + text[-1]


def _meter_text(value: float, decimals: int) -> str:
    return f"{value:0{6 + decimals if decimals else 5}.{decimals}f}"


def _plate(rng: random.Random) -> tuple[str, str]:
    """A plate: (canonical, as displayed), GB, FR, NL or DE style."""
    letters = "ABCDEFGHJKLMNPRSTVWXYZ"
    style = rng.choice(("GB", "GB", "FR", "NL", "DE"))
    pick = lambda n, pool=letters: "".join(rng.choice(pool) for _ in range(n))  # noqa: E731
    if style == "GB":
        canonical = pick(2) + pick(2, string.digits) + pick(3)
        return canonical, f"{canonical[:4]} {canonical[4:]}"
    if style == "FR":
        canonical = pick(2) + pick(3, string.digits) + pick(2)
        return canonical, f"{canonical[:2]}-{canonical[2:5]}-{canonical[5:]}"
    if style == "NL":
        canonical = pick(2, string.digits) + pick(3) + pick(1, string.digits)
        return canonical, f"{canonical[:2]}-{canonical[2:5]}-{canonical[5:]}"
    city = rng.choice(("M", "B", "HH", "K", "F", "S"))
    canonical = city + pick(2) + str(rng.randint(1, 9999))
    return canonical, f"{city}-{canonical[len(city):len(city) + 2]} {canonical[len(city) + 2:]}"


def _meters(config: DemoOcrConfig, rng: random.Random, start: datetime) -> Iterator[DemoReading]:
    for m in range(config.meters):
        unit, decimals = ("kWh", 1) if m % 3 else ("m3", 3)
        daily = rng.lognormvariate(math.log(9.0 if unit == "kWh" else 0.4), 0.5)
        value = rng.uniform(100, 30000) if unit == "kWh" else rng.uniform(10, 900)
        at = start + timedelta(hours=rng.uniform(0, 72))
        interval = rng.choice((1, 2, 3, 7))
        n = 0
        while at < config.end:
            days = interval * rng.uniform(0.8, 1.2)
            at += timedelta(days=days)
            if at >= config.end:
                break
            spike = rng.uniform(3, 6) if rng.random() < 0.03 else 1.0
            value += daily * days * rng.lognormvariate(0, 0.25) * spike
            replaced = n > 5 and rng.random() < 0.006
            if replaced:
                value = rng.uniform(0, 5)
            n += 1
            true_text = _meter_text(value, decimals)
            is_error = not replaced and rng.random() < config.error_rate
            text = _garble(rng, true_text, numeric=True) if is_error else true_text
            yield DemoReading(_record(config, f"m{m}-{n}", "meter_reading", f"{config.source_prefix}meter-{m:03d}", text,
                                      _confidence(rng, is_error), at, unit), true_text, is_error, replaced)


def _gates(config: DemoOcrConfig, rng: random.Random, start: datetime) -> Iterator[DemoReading]:
    for g in range(config.gates):
        regulars = [_plate(rng) for _ in range(40)]
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(regulars))]
        for day in range(config.days):
            for k in range(config.plate_reads_per_gate_per_day):
                canonical, shown = rng.choices(regulars, weights)[0] if rng.random() < 0.7 else _plate(rng)
                at = start + timedelta(days=day, seconds=rng.uniform(6 * 3600, 22 * 3600))
                is_error = rng.random() < config.error_rate
                text = _garble(rng, shown, numeric=False) if is_error else shown
                yield DemoReading(_record(config, f"g{g}-{day}-{k}", "license_plate", f"{config.source_prefix}gate-{g}", text,
                                          _confidence(rng, is_error), at, None), shown, is_error, False)


def _record(config: DemoOcrConfig, suffix: str, source_type: str, source_id: str, text: str, confidence: float,
            at: datetime, unit: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {"client_reading_id": f"{config.tenant}-{suffix}", "source_type": source_type,
                              "source_id": source_id, "ocr_text": text, "confidence": confidence,
                              "captured_at": at.isoformat(), "image_key": f"photos/{config.tenant}/{suffix}.jpg"}
    if unit:
        record["unit"] = unit
    return record


def generate_ocr_history(config: DemoOcrConfig) -> list[DemoReading]:
    """Every reading of the period, in captured_at order."""
    rng = random.Random(config.seed)
    start = config.end - timedelta(days=config.days)
    readings = list(_meters(config, rng, start)) + list(_gates(config, rng, start))
    readings.sort(key=lambda r: r.record["captured_at"])
    return readings


def corrections_for(readings: list[DemoReading], seed: int = 11, until: datetime | None = None) -> list[dict[str, str]]:
    """What the seed-era loop recorded: most unsure errors, some confident ones, most meter
    replacements. Rows of the corrections CSV; with `until`, each with its `corrected_at`, hours to
    three days after its reading (never after `until`)."""
    rng, delays = random.Random(seed), random.Random(seed + 1)  # the same corrections with or without times
    rows = []
    for r in readings:
        if r.replaced and rng.random() < 0.8:
            kind = "METER_REPLACED"
        elif r.is_error and rng.random() < (0.9 if r.record["confidence"] < 0.7 else 0.45):
            kind = "OCR_ERROR"
        else:
            continue
        row = {"client_reading_id": r.record["client_reading_id"], "corrected_text": r.true_text,
               "correction_type": kind}
        if until is not None:
            at = datetime.fromisoformat(r.record["captured_at"]) + timedelta(hours=delays.uniform(2, 72))
            row["corrected_at"] = min(at, until).isoformat()
        rows.append(row)
    return rows

