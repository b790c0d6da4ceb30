"""OCR text -> what it means: a meter reading's number and unit, a plate's canonical form and the
countries whose formats it fits; plus the string distances corrections and plausibility use.

Pure functions, no I/O: the API, the bulk import, triage and training all call these.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Characters OCR engines confuse on meter dials: a letter where a digit must be. Mapped only when
# the rest of the text reads as a number (see parse_meter), and the mapping itself is a signal.
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1",
                                   "i": "1", "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8", "G": "6",
                                   "b": "6", "g": "9", "T": "7"})
_UNIT_SUFFIX = re.compile(r"\s*(kwh|kw/h|m3|m³|cbm)\s*$", re.IGNORECASE)
_UNITS = {"kwh": "kWh", "kw/h": "kWh", "m3": "m3", "m³": "m3", "cbm": "m3"}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class MeterValue:
    """A meter text read as a number. `integer_digits`/`decimals` count what the dial showed
    (leading zeros included): a changed count is how a dropped digit or a moved point shows."""

    value: float
    text: str  # canonical: digits, at most one '.', leading zeros kept
    integer_digits: int
    decimals: int
    unit: str | None
    repaired: bool  # letters had to be read as digits


def parse_meter(ocr_text: str) -> MeterValue | None:
    """'08942.5 kWh', '08942,5', 'O8942.5' -> 8942.5; None when it does not read as one number."""
    text = ocr_text.strip()
    unit = None
    match = _UNIT_SUFFIX.search(text)
    if match:
        unit = _UNITS[match.group(1).lower()]
        text = text[: match.start()]
    text = re.sub(r"[\s_']", "", text).replace(",", ".")
    if not text:
        return None
    repaired_text = text.translate(_DIGIT_LOOKALIKES)
    repaired = repaired_text != text
    if not _NUMBER.match(repaired_text):
        return None
    whole, _, fraction = repaired_text.partition(".")
    return MeterValue(float(repaired_text), repaired_text, len(whole), len(fraction), unit, repaired)


# -- plates ---------------------------------------------------------------------------------------

# Canonical plate formats (separators removed, upper case) by country. A tenant configures which
# countries its gates see; a plate fitting none of them is implausible.
PLATE_FORMATS: dict[str, tuple[str, ...]] = {
    "GB": (r"[A-Z]{2}\d{2}[A-Z]{3}", r"[A-Z]\d{1,3}[A-Z]{3}", r"[A-Z]{3}\d{1,3}[A-Z]"),
    "DE": (r"[A-ZÄÖÜ]{1,3}[A-Z]{1,2}[1-9]\d{0,3}[EH]?",),
    "FR": (r"[A-Z]{2}\d{3}[A-Z]{2}",),
    "IT": (r"[A-Z]{2}\d{3}[A-Z]{2}",),
    "ES": (r"\d{4}[BCDFGHJKLMNPRSTVWXYZ]{3}",),
    "NL": (r"[A-Z]{2}\d{2}\d{2}", r"\d{2}\d{2}[A-Z]{2}", r"\d{2}[A-Z]{2}\d{2}", r"[A-Z]{2}\d{2}[A-Z]{2}",
           r"[A-Z]{2}[A-Z]{2}\d{2}", r"\d{2}[A-Z]{2}[A-Z]{2}", r"\d{2}[A-Z]{3}\d", r"\d[A-Z]{3}\d{2}",
           r"[A-Z]{2}\d{3}[A-Z]", r"[A-Z]\d{3}[A-Z]{2}", r"[A-Z]{3}\d{2}[A-Z]", r"[A-Z]\d{2}[A-Z]{3}",
           r"\d[A-Z]{2}\d{3}", r"\d{3}[A-Z]{2}\d"),
    "PL": (r"[A-Z]{2}\d{5}", r"[A-Z]{2}\d{4}[A-Z]", r"[A-Z]{2}\d{3}[A-Z]{2}", r"[A-Z]{3}[A-Z\d]{4,5}"),
    "US": (r"\d[A-Z]{3}\d{3}", r"[A-Z]{3}\d{4}", r"[A-Z]{3}\d{3}", r"\d{3}[A-Z]{3}", r"[A-Z]{2}\d{5}",
           r"\d[A-Z]{2}\d{4}"),
}
DEFAULT_PLATE_COUNTRIES: tuple[str, ...] = ("GB", "DE", "FR", "NL", "ES", "IT", "PL")
_COMPILED = {country: tuple(re.compile(f"^{f}$") for f in formats) for country, formats in PLATE_FORMATS.items()}
# Pairs OCR confuses on plates, both ways: a plate that fits no format but would after one such
# swap was almost certainly misread.
PLATE_CONFUSIONS: dict[str, str] = {"0": "OD", "O": "0DQ", "D": "0O", "Q": "O0", "8": "B", "B": "8", "1": "I7",
                                    "I": "1", "7": "1T", "T": "7", "5": "S", "S": "5", "2": "Z", "Z": "2",
                                    "6": "G", "G": "6"}


_PLATE_SEPARATORS = re.compile(r"[\s\-.·_]")


@functools.lru_cache(maxsize=1 << 16)  # a call canonicalises each text its gates have seen, again and again
def canonical_plate(ocr_text: str) -> str:
    """Upper case, separators (space, '-', '.', '·') removed."""
    return _PLATE_SEPARATORS.sub("", ocr_text.strip().upper())


def plate_countries(plate: str, countries: Iterable[str]) -> list[str]:
    """The configured countries whose formats this canonical plate fits."""
    return [c for c in countries if any(p.match(plate) for p in _COMPILED.get(c, ()))]


def confusion_repairs(plate: str, countries: Iterable[str]) -> list[str]:
    """Plates one confusable-character swap away that fit a configured format."""
    wanted = tuple(countries)
    repairs = []
    for position, char in enumerate(plate):
        for other in PLATE_CONFUSIONS.get(char, ""):
            candidate = plate[:position] + other + plate[position + 1:]
            if plate_countries(candidate, wanted):
                repairs.append(candidate)
    return repairs


# -- distances ------------------------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def within_one_edit(a: str, b: str) -> bool:
    """Distance at most one, counting a swap of neighbours as one edit (Damerau), in O(n)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diffs) == 1:
            return True
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1:]


def comparable_text(source_type: str, text: str) -> str:
    """The form in which an OCR text and its correction are compared: a plate's canonical form, a
    meter's text without unit and spaces (decimal comma as point)."""
    if source_type == "license_plate":
        return canonical_plate(text)
    stripped = _UNIT_SUFFIX.sub("", text.strip())
    return re.sub(r"[\s_']", "", stripped).replace(",", ".")


def character_error_rate(source_type: str, original: str, corrected: str) -> float:
    """Edits from the OCR text to the corrected one, per corrected character (1.0 when the
    correction is empty: nothing of the original was right)."""
    a, b = comparable_text(source_type, original), comparable_text(source_type, corrected)
    if not b:
        return 1.0 if a else 0.0
    return round(edit_distance(a, b) / len(b), 6)
