"""Batch scoring: a CSV of requests in, the same rows with probabilities out.

The same feature definitions as the API (the columnar pass of shared/conflict/features.py over
one read of the history the rows need) and the same serving model. The as-of rule: `as_of` is
when the prediction is asked, i.e. when the device starts its sync (blank: now); with `device_id`
and `client_last_sync_at` the features are as of the start of that device's sync batch, exactly as
for a live request or a training row.

The file is handled column by column, never as an object per row: each column's distinct values
are checked once against the request's rules (a batch repeats its users, entities and fields), times
are parsed once per distinct text, and the output is written from columns of text. A file that
fails those checks goes through the request model row by row, which names the first bad line with
the API's own message (or accepts what the quick checks were too strict for, e.g. non-ASCII ids).

A large file is cut into contiguous parts scored in as many processes (shared/platform/forked.py):
each reads and checks its part and sends its history window to the command's process, which reads
the history once for all of them and sends it back; each part numbers its rows from its first
row's place in the file, so the output and any bad line's number are what one process gives.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from shared.conflict.features import FEATURE_NAMES, NO_TIME, to_us
from shared.conflict.features_repository import ConflictFeatures, HistoryWindow, RequestTable, confidence
from shared.conflict.kind import CONFLICT
from shared.conflict.model import RISK_THRESHOLDS
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.errors import FieldProblem, InvalidInput, problem_location, problem_reason
from shared.platform.forked import Link, forked
from shared.platform.output_files import written_whole
from shared.platform.serving import Serving, choose_serving
from shared.platform.time_range import EARLIEST_TIME, LATEST_TIME, OUT_OF_RANGE, is_plausible_time

if TYPE_CHECKING:
    from pydantic import TypeAdapter

INPUT_COLUMNS = ("user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                 "client_last_sync_at")
OUTPUT_COLUMNS = (
    "row", "user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id", "client_last_sync_at",
    "features_as_of", "probability", "risk_level", "confidence", "model_version", *FEATURE_NAMES,
)
MAX_FIELDS = 64
# Below this many lines a file is scored in one process: on the quiet 2-core machine a split was
# 14 % slower at 20,000 rows, 10 % faster at 60,000 and 1.4x as fast at 200,000 (README, Benchmarks).
PARALLEL_MIN_ROWS = 40_000


# -- reading: the checks of ConflictPredictionRequest, a column's distinct values at a time ---------

# The request model's patterns restricted to ASCII (what the model takes beyond goes the slow way).
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
# A timestamp both datetime.fromisoformat and pydantic read alike, with its offset.
_AWARE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
# What datetime.isoformat() writes for UTC (microseconds as six digits, none when zero), by length:
# where a digit goes (d in the shape), and the shape's bytes.
_ISO_UTC_SHAPES = {
    len(shape): (np.frombuffer(shape.encode(), dtype=np.uint8) == ord("d"), np.frombuffer(shape.encode(), dtype=np.uint8))
    for shape in ("dddd-dd-ddTdd:dd:dd+00:00", "dddd-dd-ddTdd:dd:dd.dddddd+00:00")
}


class _NeedsRowChecks(Exception):
    """A value the quick checks do not accept: the request model decides, row by row."""


def _checked(values: Iterable[str], rule: re.Pattern[str]) -> None:
    if not all(rule.fullmatch(value) for value in set(values)):
        raise _NeedsRowChecks


def _iso_utc_us(texts: Sequence[str]) -> NDArray[np.int64] | None:
    """Epoch µs of each text when every text is what isoformat writes for UTC, else None. Checked
    as a matrix of bytes (numpy over the whole column, not a call per value): a digit where the
    shape has one, the shape's own character elsewhere, and a fraction, when there is one, not all
    zeros; then numpy reads the bytes before the offset. The texts of each shape are read from one
    joined text (a column of mixed lengths, such as one whole second among microseconds, cost
    12 ms more per 41k rows as np.array of the strings)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    shapes = [(lengths == length, digit, shape) for length, (digit, shape) in _ISO_UTC_SHAPES.items()]
    counts = [int(np.count_nonzero(at)) for at, _, _ in shapes]
    if sum(counts) != len(texts):
        return None
    us = np.zeros(len(texts), dtype=np.int64)
    for (at, digit, shape), count in zip(shapes, counts, strict=True):
        if not count:
            continue
        joined = "".join(texts if count == len(texts) else itertools.compress(texts, at.tolist()))
        if not joined.isascii():
            return None
        length = len(shape)
        raw = np.frombuffer(joined.encode(), dtype=f"S{length}")
        rows = raw.view(np.uint8).reshape(count, length)
        if not ((rows[:, digit] - 48 < 10).all() and (rows[:, ~digit] == shape[~digit]).all()):
            return None
        if length > 25 and not (rows[:, 20:26] != 48).any(axis=1).all():  # .000000 is written as no fraction
            return None
        us[at] = _parsed_utc(raw.astype(f"S{length - 6}"))  # without "+00:00"
    return us


def _times(texts: Sequence[str], plausible: bool) -> tuple[NDArray[np.int64], list[str], bool]:
    """Epoch µs and the normalised text (isoformat) of each timestamp, and whether every text was
    its own normal form. Those in UTC (the usual case) are parsed by numpy for the whole column;
    others once per distinct text. A column already written as isoformat writes UTC (what a
    program usually sends) is its own normal form."""
    us = _iso_utc_us(texts) if texts else np.zeros(0, dtype=np.int64)
    if us is not None:
        return _plausible(us, plausible), list(texts), True
    if not all(map(_AWARE_TIME.fullmatch, texts)):
        raise _NeedsRowChecks
    utc = np.fromiter((text.endswith(("+00:00", "Z")) for text in texts), dtype=bool, count=len(texts))
    us = np.zeros(len(texts), dtype=np.int64)
    normalised = np.empty(len(texts), dtype=object)
    if utc.any():
        local = [text.removesuffix("Z").removesuffix("+00:00") for text, is_utc in zip(texts, utc.tolist(), strict=True)
                 if is_utc]
        us[utc] = _parsed_utc(local)
        normalised[utc] = _iso_utc(us[utc])
    others: dict[str, datetime] = {text: datetime.fromisoformat(text) for text in set(np.asarray(texts)[~utc].tolist())}
    for n in np.flatnonzero(~utc).tolist():
        at = others[texts[n]]
        us[n], normalised[n] = to_us(at), at.isoformat()
    return _plausible(us, plausible), normalised.tolist(), False


def _parsed_utc(texts: list[str] | NDArray[np.bytes_]) -> NDArray[np.int64]:
    """numpy's reading of the column (a month 13 or a 31 November fails it, for the model to name)."""
    try:
        return np.asarray(texts).astype("datetime64[us]").astype(np.int64)
    except ValueError:
        raise _NeedsRowChecks from None


def _plausible(us: NDArray[np.int64], check: bool) -> NDArray[np.int64]:
    if check and len(us) and (us.min() < to_us(EARLIEST_TIME) or us.max() >= to_us(LATEST_TIME)):
        raise _NeedsRowChecks
    return us


@dataclass(frozen=True)
class _Input:
    table: RequestTable
    as_of_text: list[str]  # each echoed as the request model would print it
    last_sync_text: list[str]
    # Each row's input values as the output echoes them (user_id .. client_last_sync_at, joined by
    # commas): the file's own lines when they are already in that form (None: joined from columns).
    echo: list[str] | None = None
    as_of_is_iso_utc: bool = False  # as_of_text is what _iso_utc writes for table.as_of


class _Columns:
    """The file's values column by column, as csv.reader reads them (blank lines skipped; a short
    row's missing values and an absent column read as empty)."""

    def __init__(self, header: list[str], values: list[list[str]], rows: int, lines: list[str] | None = None) -> None:
        self.header, self._values, self.rows = header, values, rows
        self.lines = lines  # each row's line, when the file was split by lines (no quotes)

    def __call__(self, name: str) -> list[str]:
        if name not in self.header:
            return [""] * self.rows
        return self._values[len(self.header) - 1 - self.header[::-1].index(name)]  # the last of a repeated name

    @classmethod
    def of_rows(cls, header: list[str], rows: list[list[str]]) -> _Columns:
        def column(at: int) -> list[str]:
            if rows and min(map(len, rows)) > at:
                return list(map(itemgetter(at), rows))
            return [row[at] if at < len(row) else "" for row in rows]

        return cls(header, [column(at) for at in range(len(header))], len(rows))


def _csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    return header, list(filter(None, reader))  # csv.DictReader skips blank lines too


# What str.splitlines ends a line at besides CR and LF (csv.reader does not).
_OTHER_LINE_ENDS = ("\v", "\f", "\x1c", "\x1d", "\x1e")
_OTHER_LINE_ENDS_UNICODE = (*_OTHER_LINE_ENDS, "\x85", "\u2028", "\u2029")


def _other_line_ends(text: str) -> bool:
    return any(map(text.__contains__, _OTHER_LINE_ENDS if text.isascii() else _OTHER_LINE_ENDS_UNICODE))


def _split(text: str) -> _Columns | None:
    """The usual file, split by str methods (C loops over the whole text, not a call per row):
    no quote and no line break but CR and LF, so csv.reader would split at every comma and line
    end alike, and every row with the header's width. None: anything else, for csv.reader."""
    if '"' in text or _other_line_ends(text):
        return None
    lines = text.splitlines()  # at CRLF, LF and CR, as csv.reader ends a row
    header = lines[0].split(",") if lines and lines[0] else []
    body = lines[1:]
    if "" in body:
        body = [line for line in body if line]
    if set(map(methodcaller("count", ","), body)) - {len(header) - 1}:
        return None  # short or long rows: csv.reader's own reading
    flat = ",".join(body).split(",") if body else []
    return _Columns(header, [flat[at::len(header)] for at in range(len(header))], len(body), body)


def _field_lists(texts: list[str]) -> tuple[list[tuple[str, ...] | None], dict[str, tuple[str, ...] | None]]:
    """Each row's fields (None: none given), split once per distinct text (a batch repeats them),
    and each distinct text's fields."""
    split = {text: tuple(f for f in text.split(";") if f) or None for text in set(texts)}
    return list(map(split.__getitem__, texts)), split


def _quick_input(column: _Columns, tenant_id: str, now: datetime) -> _Input:
    user, domain, entity_type, entity_id = map(column, INPUT_COLUMNS[:4])
    _checked(set(user).union(entity_id), _IDENTIFIER)
    _checked(set(domain).union(entity_type), _NAME)
    fields, split_fields = _field_lists(column("fields"))
    distinct_fields = set(split_fields.values())
    _checked((f for listed in distinct_fields for f in (listed or ())), _FIELD)
    if any(listed is not None and (len(listed) > MAX_FIELDS or len(set(listed)) < len(listed))
           for listed in distinct_fields):
        raise _NeedsRowChecks  # too many or a repeated name: the request model names the line
    device_text = column("device_id")
    _checked(set(device_text) - {""}, _IDENTIFIER)
    devices: list[str | None] = [d or None for d in device_text] if "" in device_text else list(device_text)
    # A column given on every row (the usual file) is taken as it is, without a pass per row.
    as_of_given = column("as_of")
    every_as_of = "" not in as_of_given
    as_of, as_of_text, as_of_own = _times(as_of_given if every_as_of else [t or now.isoformat() for t in as_of_given],
                                          plausible=True)
    syncs = column("client_last_sync_at")
    if "" not in syncs:
        last_sync, last_sync_text, syncs_own = _times(syncs, plausible=True)
    else:
        given_us, given_text, syncs_own = _times([t for t in syncs if t], plausible=True)
        last_sync = np.full(column.rows, NO_TIME, dtype=np.int64)
        last_sync[np.array([bool(t) for t in syncs], dtype=bool)] = given_us
        texts = iter(given_text)
        last_sync_text = [next(texts) if t else "" for t in syncs]
    if np.any(last_sync > as_of):  # a last sync after the moment asked: the row checks name its line
        raise _NeedsRowChecks
    table = RequestTable([tenant_id] * column.rows, user, domain, entity_type, entity_id, devices, fields, as_of,
                         last_sync)
    # The lines are the output's echo as they are when every value is already as the output
    # writes it: the input columns in the output's order, times as isoformat writes UTC, as_of
    # given on every row, and fields without empty names.
    in_normal_form = (column.lines is not None and column.header == list(INPUT_COLUMNS) and as_of_own and syncs_own
                      and every_as_of
                      and all(";".join(listed or ()) == text for text, listed in split_fields.items()))
    return _Input(table, as_of_text, last_sync_text, column.lines if in_normal_form else None, as_of_own)


@functools.cache
def _request_list() -> TypeAdapter[list[Any]]:
    """One validation call for the whole file (pydantic's loop runs in its compiled core). Built
    on first use: only a file the quick checks refuse needs the request model (and pydantic, whose
    import is a tenth of a quick file's whole run)."""
    from pydantic import TypeAdapter

    from shared.conflict.prediction import ConflictPredictionRequest

    return TypeAdapter(list[ConflictPredictionRequest])


def _bad_line(number: int, message: str) -> InvalidInput:
    return InvalidInput(f"line {number}: {message}", [FieldProblem(f"line {number}", message)])


def _as_of_times(raws: list[dict[str, str]], first_line: int, now: datetime) -> list[datetime]:
    times = []
    for number, raw in enumerate(raws, start=first_line):
        try:
            as_of = datetime.fromisoformat(raw["as_of"]) if raw.get("as_of") else now
        except ValueError as exc:
            raise _bad_line(number, f"as_of: {exc}") from None
        if as_of.tzinfo is None:
            raise _bad_line(number, "as_of needs a time zone")
        if not is_plausible_time(as_of):  # as every time a client gives
            raise _bad_line(number, f"as_of: {OUT_OF_RANGE}")
        times.append(as_of)
    return times


def _checked_input(rows: list[list[str]], header: list[str], tenant_id: str, now: datetime,
                   first_line: int) -> _Input:
    """The request model on every row: the first bad line (numbered from `first_line`, the
    number of the first row in the whole file) is an InvalidInput naming it."""
    raws = [dict(zip(header, row, strict=False)) for row in rows]
    bodies = [{
        "domain": raw.get("domain", ""), "user_id": raw.get("user_id", ""), "entity_type": raw.get("entity_type", ""),
        "entity_id": raw.get("entity_id", ""), "fields": [f for f in (raw.get("fields") or "").split(";") if f] or None,
        "device_id": raw.get("device_id") or None, "client_last_sync_at": raw.get("client_last_sync_at") or None,
    } for raw in raws]
    from pydantic import ValidationError

    try:
        parsed = _request_list().validate_python(bodies)
    except ValidationError as exc:
        first = exc.errors()[0]  # the lowest row: pydantic checks a list in order
        index = int(first["loc"][0])
        _as_of_times(raws[:index], first_line, now)  # a bad as_of before it is the first bad line
        where = problem_location({**first, "loc": first["loc"][1:]})
        raise _bad_line(first_line + index, f"{where}: {problem_reason(first)}") from None
    as_ofs = _as_of_times(raws, first_line, now)
    for number, (request, as_of) in enumerate(zip(parsed, as_ofs, strict=True), start=first_line):
        if request.client_last_sync_at is not None and request.client_last_sync_at > as_of:
            # As the API refuses a last sync after the moment it is asked (its `now`).
            raise _bad_line(number, "client_last_sync_at: is after the row's as_of (when the prediction is asked)")
    requests = [request.feature_request(str(number), tenant_id, as_of) for number, (request, as_of)
                in enumerate(zip(parsed, as_ofs, strict=True), start=first_line)]
    return _Input(RequestTable.of(requests), [r.as_of.isoformat() for r in requests],
                  [r.client_last_sync_at.isoformat() if r.client_last_sync_at else "" for r in requests])


@dataclass(frozen=True)
class _Part:
    """A stretch of the file's rows: either text (the file's header line, then its lines
    start:end) or rows csv.reader already read, the first of them the file's row `first_row`."""

    file: str = ""
    header_end: int = 0
    start: int = 0
    end: int = 0
    header: list[str] | None = None
    rows: list[list[str]] | None = None
    first_row: int = 0

    @functools.cached_property
    def first_line(self) -> int:
        """The number the part's first row has in the whole file: line 1 is the header, and blank
        lines are not counted (csv.DictReader skips them). Counted where the part is scored (the
        parent need not count for its children): the lines before it, as csv.reader ends them."""
        if self.rows is not None or self.start == self.header_end:
            return 2 + self.first_row
        lines = self.file[self.header_end:self.start].splitlines()
        return 2 + len(lines) - lines.count("")

    def text(self) -> str:
        if self.start == self.header_end and self.end == len(self.file):
            return self.file
        return self.file[:self.header_end] + self.file[self.start:self.end]


def _read(part: _Part, tenant_id: str, now: datetime) -> _Input:
    rows = part.rows
    if rows is not None:
        columns = _Columns.of_rows(part.header or [], rows)
    else:
        text = part.text()
        split = _split(text)
        if split is None:
            header, rows = _csv_rows(text)
            split = _Columns.of_rows(header, rows)
        columns = split
    missing = {"user_id", "domain", "entity_type", "entity_id"} - set(columns.header)
    if missing:
        raise InvalidInput(f"input lacks columns: {', '.join(sorted(missing))}")
    try:
        return _quick_input(columns, tenant_id, now)
    except _NeedsRowChecks:
        header, rows = _csv_rows(part.text()) if rows is None else (columns.header, rows)
        return _checked_input(rows, header, tenant_id, now, part.first_line)


# -- writing: columns of text ---------------------------------------------------------------------


def _iso_utc(us: NDArray[np.int64]) -> list[str]:
    """datetime.isoformat() of UTC epoch µs, for a whole column (no fraction on whole seconds)."""
    stamps = us.astype("datetime64[us]")
    whole = us % 1_000_000 == 0
    text = np.datetime_as_string(stamps, unit="us").astype(object)
    text[whole] = np.datetime_as_string(stamps[whole], unit="s")
    return [f"{t}+00:00" for t in text.tolist()]


def _risk_levels(p: NDArray[np.float64]) -> list[str]:
    levels = np.select([p >= threshold for threshold, _ in RISK_THRESHOLDS], [level for _, level in RISK_THRESHOLDS],
                       default="low")
    return levels.tolist()  # type: ignore[no-any-return]


def _confidences(user_support: NDArray[np.float64], entity_support: NDArray[np.float64]) -> list[str]:
    """`confidence` of each row: it depends on the supports only up to their caps (20 and 5)."""
    capped = np.minimum(user_support, 20).astype(np.int64) * 6 + np.minimum(entity_support, 5).astype(np.int64)
    values = {int(c): str(confidence({"support_user_syncs": c // 6, "support_entity_edits": c % 6}))
              for c in np.unique(capped)}
    return [values[c] for c in capped.tolist()]


def _text(values: NDArray[np.float64]) -> list[str]:
    """repr of each value (as csv.writer writes a float), formatted once per distinct value."""
    distinct = np.unique(values)
    # Each value's place among the distinct ones: by binary search when they are few (numpy's
    # argsort behind np.unique's inverse is slow on many equal values: 4-6 ms against 1.4-2.1 for
    # the counts of issue 8's case), else from np.unique's sort (many distinct values, as hours).
    if len(distinct) * 8 <= len(values):
        inverse = np.searchsorted(distinct, values)
    else:
        distinct, inverse = np.unique(values, return_inverse=True)
    texts = np.array([repr(v) for v in distinct.tolist()], dtype=object)
    return texts[inverse].tolist()  # type: ignore[no-any-return]


def _features_as_of(data: _Input, as_of: NDArray[np.float64]) -> list[str]:
    """The as_of text of each row's features: most rows are as of the time asked, whose text the
    input already holds when it is as _iso_utc writes it; only the others are formatted."""
    us = as_of.astype(np.int64)
    if not data.as_of_is_iso_utc:
        return _iso_utc(us)
    asked = data.table.as_of
    moved = np.flatnonzero(us != asked)
    distinct, inverse = np.unique(us[moved], return_inverse=True)  # the rows of a sync batch share its start
    texts = np.array(data.as_of_text, dtype=object)
    # A batch's start is mostly the time asked of the batch's first row in the file (13,012 of
    # issue 8's 13,013 starts), whose text the input holds: found by binary search when the
    # rows come in time order, and only the others formatted.
    distinct_texts = np.empty(len(distinct), dtype=object)
    found = np.zeros(len(distinct), dtype=bool)
    if len(distinct) and bool(np.all(asked[1:] >= asked[:-1])):
        at = np.minimum(np.searchsorted(asked, distinct), len(asked) - 1)
        found = asked[at] == distinct
        distinct_texts[found] = texts[at[found]]
    distinct_texts[~found] = _iso_utc(distinct[~found])
    # Placed by numpy, not a loop per moved row (issue 8's case moves 20,447 rows: 12.3 -> 7.4 ms).
    texts[moved] = distinct_texts[inverse]
    return texts.tolist()  # type: ignore[no-any-return]


def _written(data: _Input, columns: dict[str, NDArray[np.float64]], probabilities: NDArray[np.float64],
             label: str, first_line: int) -> str:
    """The output rows (no header), as csv.writer writes them: no value needs quoting (ids, names
    and fields match the request model's patterns, which admit no comma, quote or line break;
    times and numbers hold none), so a row is its values joined."""
    table = data.table
    n = len(table)
    echo = [data.echo] if data.echo is not None else [
        list(table.user_id), list(table.domain), list(table.entity_type), list(table.entity_id),
        [";".join(f or ()) for f in table.fields], data.as_of_text, [d or "" for d in table.device_id],
        data.last_sync_text]
    output = [
        list(map(str, range(first_line, first_line + n))), *echo, _features_as_of(data, columns["as_of"]),
        [f"{p:.6f}" for p in probabilities.tolist()], _risk_levels(probabilities),
        _confidences(columns["support_user_syncs"], columns["support_entity_edits"]), [label] * n,
        *(_text(columns[name]) for name in FEATURE_NAMES),
    ]
    rows = list(map(",".join, zip(*output, strict=True)))  # joined by C loops (map), not a generator per row
    rows.append("")  # the last row's line end, without copying the text once more
    return "\r\n".join(rows)


def _parts(text: str, count: int) -> list[_Part]:
    """The file cut into `count` stretches of about equal size at line ends, for as many processes;
    one part when there is one process or the file is small (a child's start would cost more than
    it saves). A file whose line ends may lie inside a quoted value (or that has line ends
    csv.reader does not take for one) is read by csv.reader here and its rows cut instead."""
    whole = [_Part(text, 0, 0, len(text))]
    if count < 2 or text.count("\n") < PARALLEL_MIN_ROWS:
        return whole
    header_end = text.find("\n") + 1
    if header_end < 2:
        return whole  # no header line: the one part names the problem
    if '"' in text or _other_line_ends(text) or "\r" in text[:header_end].removesuffix("\n").removesuffix("\r"):
        header, rows = _csv_rows(text)
        if not rows:
            return whole
        size = -(-len(rows) // count)
        return [_Part(header=header, rows=rows[at:at + size], first_row=at) for at in range(0, len(rows), size)]
    cuts = [header_end]
    for k in range(1, count):
        at = header_end + (len(text) - header_end) * k // count
        cuts.append(max(cuts[-1], (text.find("\n", at) + 1) or len(text)))
    cuts.append(len(text))
    return [_Part(text, header_end, start, end) for start, end in itertools.pairwise(cuts) if start < end]


def _scored(data: _Input, columns: dict[str, NDArray[np.float64]], serving: Serving, first_line: int) -> str:
    """A part's output rows as text, from its features."""
    if serving.answering is None:
        rows = [{name: float(columns[name][n]) for name in FEATURE_NAMES} for n in range(len(data.table))]
        probabilities = np.array([CONFLICT.heuristic(row) for row in rows], dtype=np.float64)
    else:
        probabilities = serving.answering.model.predict_proba(CONFLICT.design_matrix(columns))  # type: ignore[arg-type]
    return _written(data, columns, probabilities, serving.label, first_line)


@dataclass(frozen=True)
class _Scoring:
    """What every part of one file is scored with."""

    tenant_id: str
    now: datetime
    features: ConflictFeatures
    serving: Serving


def _scored_in_child(scoring: _Scoring, part: _Part, parent: Link) -> str:
    """A forked process's part: read and checked here, its window sent to the parent (which reads
    the history once for every part), its keys hashed while the parent reads, then its features
    from what the parent read and sends."""
    data = _read(part, scoring.tenant_id, scoring.now)
    parent.send(scoring.features.window(data.table))
    keyed = scoring.features.keyed(None, data.table)
    history, window = parent.receive()
    return _scored(data, scoring.features.from_history(keyed, history, window), scoring.serving, part.first_line)


def _scored_parts(scoring: _Scoring, tx: Any, parts: list[_Part]) -> list[str]:
    """Every part's output, the first scored here and each other in a forked process. The history
    is read here once, for the merged windows of every part, while this process hashes its keys;
    a part that fails raises here in file order (this process's part first)."""
    features = scoring.features
    with forked([functools.partial(_scored_in_child, scoring, part) for part in parts[1:]]) as children:
        data = _read(parts[0], scoring.tenant_id, scoring.now)
        window = HistoryWindow.merged([features.window(data.table), *(child.receive() for child in children)])
        # The server reads while the keys are hashed here (the read waits on the socket, which
        # lets this thread run).
        with ThreadPoolExecutor(1) as reader:
            read = reader.submit(features.read, tx, window)
            keyed = features.keyed(None, data.table)
            history = read.result()
        # Sent from threads (a pipe write waits for the child to read) while this process goes on.
        with ThreadPoolExecutor(max(1, len(children))) as senders:
            for child in children:
                senders.submit(child.send, (history, window))
            bodies = [_scored(data, features.from_history(keyed, history, window), scoring.serving,
                              parts[0].first_line)]
        return bodies + [child.answer() for child in children]


def score_conflict_csv(context: AppContext, tenant_id: str, source: IO[str], sink: IO[str]) -> dict[str, Any]:
    """Score the file; a large one split over `scoring_processes` processes (same output, same
    order), which read the history once. Nothing is written to `sink` unless every row scored."""
    now = datetime.now(UTC)  # one moment for every row without as_of, whichever process scores it
    text = source.read()
    # Batch scoring answers with the champion: a challenger's share is a share of live traffic.
    services = conflict_services(context)
    serving = choose_serving(CONFLICT, services.models, tenant_id, "batch", allow_challenger=False, with_shadow=False)
    scoring = _Scoring(tenant_id, now, services.features, serving)
    with services.transactions.transaction() as tx:
        if services.features.keys_without_database(tx):
            bodies = _scored_parts(scoring, tx, _parts(text, context.settings.scoring_processes))
        else:  # the server hashes the keys: one process, which has the connection
            data = _read(_Part(text, 0, 0, len(text)), tenant_id, now)
            window = services.features.window(data.table)
            columns = services.features.from_history(services.features.keyed(tx, data.table),
                                                 services.features.read(tx, window), window)
            bodies = [_scored(data, columns, serving, 2)]
    sink.write(",".join(OUTPUT_COLUMNS) + "\r\n")
    for body in bodies:
        sink.write(body)
    rows = sum(map(methodcaller("count", "\n"), bodies))
    return {"rows": rows, "model_version": serving.label, "degraded": serving.degraded}


def score_conflict_file(context: AppContext, tenant_id: str, source: Path, target: Path) -> dict[str, Any]:
    # UTF-8 whatever the locale; utf-8-sig: a byte-order mark (Excel's) is not part of the first column's name.
    with source.open(newline="", encoding="utf-8-sig") as src, written_whole(target) as dst:
        return score_conflict_csv(context, tenant_id, src, dst)
