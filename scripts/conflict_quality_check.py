#!/usr/bin/env python3
"""A second, independent check of the conflict model's quality (issue 8), on a history generator
of its own ("gen2"), written from the issue's mechanism, not from shared/conflict/demo_data.py.

The mechanism: devices go offline and upload, at each sync, a batch of the edits made since their
last sync (all sharing `client_last_sync_at`). An edit conflicts when other users synced the same
entity since this device's last sync; how likely is the generator's own hazard, which differs by
--variant:

- `stale`: the device's staleness dominates: others' edits weigh by how recently they landed
  (older ones were likely pulled by a background refresh), saturate, and count for more the
  longer the device was away; field overlap matters only a little.
- `crowd`: crowding is non-linear: a steep step once three or more distinct people are on the
  entity (since the last sync, plus anyone on it in the last 6 h), the overlap a modifier.
- `plainish`: log-odds linear in the overlap, log1p(others' edits) and log1p(hours away): a
  plain logistic regression should already be near the best here.

Shared by all: entity types with their own base rates and fields, lognormal entity popularity
within teams, per-user propensity, bursty users (short bursts, then days offline, with more edits
per batch after longer absences) beside steady ones, a weekly and daily rhythm, a fifth of users on
two devices (whose own other device's edits add a little hazard no feature sees), label noise.

Then the real pipeline, as a user runs it: `mlstack ingest sync-events` of the history's CSV into a
throwaway PostgreSQL (scripts/bench_conflict.py's setup), `mlstack train conflict --days-back 90
--activate`, and `mlstack score conflict` of the newest 20 % (the training's own hold-out), asked
as a client asks: `as_of` = the start of the device's sync batch, with `device_id`,
`client_last_sync_at` and the edit's fields. Beside it, on the same rows: the plain logistic
regression on the five original features (bench_conflict's `_plain_logistic_quality`, trained on
the same older rows), the generator's own probabilities (the oracle), and, as a diagnostic of how
much a better shape of the same features could still gain, gradient-boosted trees on the model's
six features (same rows; scikit-learn, training-side only), and with the entity's type beside them.

    .venv/bin/python scripts/conflict_quality_check.py [--variant stale crowd plainish] [--seeds 1 2]
        [--users 460] [--days 56] [--json FILE] [--generate-only]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

# (domain, entity type, number of fields, base hazard multiplier)
ENTITY_TYPES: tuple[tuple[str, str, int, float], ...] = (
    ("crm", "contact", 10, 0.6), ("crm", "deal", 12, 1.0),
    ("inventory", "item", 8, 0.45), ("field_ops", "work_order", 14, 1.7),
)
TEAMS = 10
ENTITIES_PER_USER = 14
SLOT_HOURS = 0.25  # resolution of the activity rhythm
TZ_HOURS = 1  # the tenant works in UTC+1
NOISE_FALSE, NOISE_MISS = 0.004, 0.02  # label noise: a logged conflict without cause, a missed one


@dataclass(frozen=True)
class Edit:
    """One edit of a sync batch, with what the mechanism needs (the oracle's inputs)."""

    event_id: str
    user: int
    device: str
    entity: int
    fields: int  # bit mask over the entity type's fields
    last_sync: float | None  # seconds since the history's start
    received: float
    batch_start: float


# -- when people sync -----------------------------------------------------------------------------


def _rhythm(slots: int, start: datetime) -> NDArray[np.float64]:
    """Activity intensity per slot: working hours on weekdays, little at night and on weekends."""
    times = [start + timedelta(hours=(k + 0.5) * SLOT_HOURS + TZ_HOURS) for k in range(slots)]
    hour = np.array([t.hour for t in times])
    weekday = np.array([t.weekday() for t in times])
    by_hour = np.where((hour >= 8) & (hour < 18), 1.0, np.where((hour >= 6) & (hour < 22), 0.35, 0.06))
    by_day = np.select([weekday == 5, weekday == 6], [0.3, 0.12], 1.0)
    return by_hour * by_day


def _sync_times(rng: np.random.Generator, clock: NDArray[np.float64], bursty: bool, mean_gap: float) -> NDArray[np.float64]:
    """A device's sync starts in seconds: gaps drawn in activity-hours, mapped to the calendar."""
    horizon = clock[-1]
    count = int(horizon / mean_gap * 3) + 20
    if bursty:  # bursts of quick syncs, then long offline stretches
        gaps = np.where(rng.random(count) < 0.6, rng.exponential(0.25 * mean_gap, count),
                        rng.lognormal(np.log(4.0 * mean_gap), 0.7, count))
    else:
        gaps = rng.gamma(3.0, mean_gap / 3.0, count)
    activity = rng.uniform(0, mean_gap) + np.cumsum(gaps)
    activity = activity[activity < horizon]
    slot = np.searchsorted(clock, activity)  # the calendar slot where that much activity is reached
    within = rng.uniform(0, SLOT_HOURS * 3600, len(slot))
    return np.unique(slot * SLOT_HOURS * 3600 + within)


# -- the history ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    entity_type: NDArray[np.int64]
    user_propensity: NDArray[np.float64]
    edits: list[Edit]


def build_world(seed: int, users: int, days: int, start: datetime) -> World:
    rng = np.random.default_rng(seed)
    entities = users * ENTITIES_PER_USER
    entity_type = rng.choice(len(ENTITY_TYPES), entities, p=[0.35, 0.2, 0.3, 0.15])
    popularity = rng.lognormal(0.0, 1.6, entities)
    team_of_entity = rng.integers(0, TEAMS, entities)
    team_pools = [np.flatnonzero(team_of_entity == k) for k in range(TEAMS)]
    field_weights = [rng.dirichlet(np.full(n, 0.6)) for _, _, n, _ in ENTITY_TYPES]
    propensity = rng.lognormal(-0.18, 0.6, users)

    slots = days * int(24 / SLOT_HOURS)
    clock = np.cumsum(_rhythm(slots, start)) * SLOT_HOURS  # activity-hours reached by each slot's end
    batches: list[tuple[float, int, str, float | None, int]] = []  # start, user, device, last sync, batch size
    for user in range(users):
        bursty = rng.random() < 0.35
        mean_gap = float(rng.lognormal(np.log(2.6), 0.45))
        devices = [(f"u{user}-phone", mean_gap)] + ([(f"u{user}-tablet", 3 * mean_gap)] if rng.random() < 0.2 else [])
        for device, gap in devices:
            times = _sync_times(rng, clock, bursty, gap)
            for k, t in enumerate(times):
                away_hours = (t - times[k - 1]) / 3600 if k else 0.0
                size = 1 + rng.poisson(0.4 + 0.55 * np.log1p(away_hours) if bursty else 0.8)
                batches.append((float(t), user, device, float(times[k - 1]) if k else None, int(size)))
    batches.sort()

    user_team = rng.integers(0, TEAMS, users)
    favourites = [rng.choice(team_pools[user_team[u]], min(12, len(team_pools[user_team[u]])),
                             p=_normalised(popularity[team_pools[user_team[u]]])) for u in range(users)]
    all_p = _normalised(popularity)
    edits: list[Edit] = []
    for start_s, user, device, last_sync, size in batches:
        chosen: set[int] = set()
        for _ in range(size):
            r = rng.random()
            if r < 0.45:
                entity = int(rng.choice(favourites[user]))
            elif r < 0.85:
                pool = team_pools[user_team[user]]
                entity = int(pool[rng.choice(len(pool), p=_normalised(popularity[pool]))])
            else:
                entity = int(rng.choice(entities, p=all_p))
            chosen.add(entity)
        received = start_s
        for entity in chosen:
            weights = field_weights[entity_type[entity]]
            count = min(len(weights), 1 + rng.poisson(0.7))
            mask = sum(1 << int(f) for f in rng.choice(len(weights), count, replace=False, p=weights))
            edits.append(Edit(f"g{seed}-{len(edits)}", user, device, entity, mask, last_sync, received, start_s))
            received += float(rng.exponential(4.0)) + 1e-3
    edits.sort(key=lambda e: e.received)
    return World(entity_type, propensity, edits)


def _normalised(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = weights / weights.sum()
    return out


# -- the oracle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exposure:
    """What the edit collides with: other users' edits of the entity since the device's last sync."""

    hours_away: float
    others_ages_hours: NDArray[np.float64]  # of each other edit, at this batch's start
    others_overlap: NDArray[np.float64]  # share of this edit's fields each one changed
    union_overlap: float
    distinct_others: int
    crowd_6h: int  # distinct other users on the entity in the 6 h before, since the sync or not
    own_other_device: int  # this user's other device's edits since the last sync (no feature sees it)
    overlap_mask: int  # this edit's fields that others changed since the last sync


def _popcount(mask: int) -> int:
    return bin(mask).count("1")


def exposure(edit: Edit, history: list[Edit]) -> Exposure:
    """`history`: earlier edits of the same entity, in receipt order."""
    since = edit.last_sync if edit.last_sync is not None else edit.batch_start
    ages, overlaps, users, crowd, union, own = [], [], set(), set(), 0, 0
    width = _popcount(edit.fields)
    for other in reversed(history):
        if other.received >= edit.batch_start:
            continue
        if other.received < min(since, edit.batch_start - 6 * 3600):
            break
        if other.user != edit.user and other.received >= edit.batch_start - 6 * 3600:
            crowd.add(other.user)
        if other.received < since:
            continue
        if other.user == edit.user:
            own += other.device != edit.device
            continue
        ages.append((edit.batch_start - other.received) / 3600)
        overlaps.append(_popcount(edit.fields & other.fields) / width)
        users.add(other.user)
        union |= other.fields
    return Exposure((edit.batch_start - since) / 3600, np.array(ages), np.array(overlaps),
                    _popcount(edit.fields & union) / width, len(users), len(crowd | users), own, edit.fields & union)


def _hazard_stale(x: Exposure, base: float) -> float:
    staleness = 1 - np.exp(-x.hours_away / 30.0)
    weight = float(np.sum(np.exp(-x.others_ages_hours / 24.0) * (0.6 + 0.4 * x.others_overlap)))
    return base * (0.015 + 0.05 * staleness + 0.8 * (1 - np.exp(-weight / 1.2)) * (0.3 + 0.7 * staleness)
                   + 0.08 * x.own_other_device)


def _hazard_crowd(x: Exposure, base: float) -> float:
    crowding = 1 / (1 + np.exp(-2.5 * (x.distinct_others + 0.5 * (x.crowd_6h - x.distinct_others) - 3.0)))
    touched = float(len(x.others_ages_hours) > 0)
    return base * (0.015 + 1.1 * crowding * (0.4 + 0.6 * x.union_overlap) + 0.12 * touched * x.union_overlap
                   + 0.08 * x.own_other_device)


def _hazard_plainish(x: Exposure, base: float) -> float:
    logit = (-4.5 + np.log(base) + 2.4 * x.union_overlap + 0.8 * np.log1p(len(x.others_ages_hours))
             + 0.25 * np.log1p(x.hours_away))
    p = 1 / (1 + np.exp(-logit))
    return float(-np.log1p(-p))  # as a hazard, so all variants end alike


VARIANTS: dict[str, Callable[[Exposure, float], float]] = {
    "stale": _hazard_stale, "crowd": _hazard_crowd, "plainish": _hazard_plainish}


def oracle(world: World, variant: str, seed: int) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[int]]:
    """Each edit's conflict probability, its drawn label, and the fields its conflict names."""
    hazard = VARIANTS[variant]
    rng = np.random.default_rng(seed + 7919)
    by_entity: dict[int, list[Edit]] = defaultdict(list)
    probability = np.empty(len(world.edits))
    overlapping: list[int] = []
    for n, edit in enumerate(world.edits):
        history = by_entity[edit.entity]
        x = exposure(edit, history)
        base = ENTITY_TYPES[world.entity_type[edit.entity]][3] * world.user_propensity[edit.user]
        p = 1 - np.exp(-hazard(x, base))
        probability[n] = NOISE_FALSE + (1 - NOISE_FALSE - NOISE_MISS) * p
        overlapping.append(x.overlap_mask)
        history.append(edit)
    labels = rng.random(len(probability)) < probability
    return probability, labels, overlapping


# -- files the pipeline reads ---------------------------------------------------------------------


def _field_names(entity_type: int, mask: int) -> list[str]:
    prefix = ENTITY_TYPES[entity_type][1]
    return [f"{prefix}_f{k}" for k in range(ENTITY_TYPES[entity_type][2]) if mask >> k & 1]


def _iso(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).isoformat()


def write_history(path: Path, world: World, labels: NDArray[np.bool_], overlapping: list[int], start: datetime) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_event_id", "user_id", "device_id", "domain", "entity_type", "entity_id",
                         "fields_changed", "client_last_sync_at", "received_at", "conflicted", "conflict_fields"])
        for edit, conflicted, overlap in zip(world.edits, labels, overlapping, strict=True):
            kind = int(world.entity_type[edit.entity])
            domain, type_name = ENTITY_TYPES[kind][:2]
            fields = _field_names(kind, edit.fields)
            named = _field_names(kind, overlap) or fields[:1] if conflicted else []
            writer.writerow([edit.event_id, f"user{edit.user}", edit.device, domain, type_name, f"e{edit.entity}",
                             ";".join(fields),
                             _iso(start, edit.last_sync) if edit.last_sync is not None else "",
                             _iso(start, edit.received), "true" if conflicted else "false", ";".join(named)])


def requests_csv(world: World, rows: range, start: datetime) -> str:
    """The hold-out asked as a client asks: as of its sync batch's start, naming device and last sync."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                     "client_last_sync_at"])
    for n in rows:
        edit = world.edits[n]
        kind = int(world.entity_type[edit.entity])
        writer.writerow([f"user{edit.user}", *ENTITY_TYPES[kind][:2], f"e{edit.entity}",
                         ";".join(_field_names(kind, edit.fields)), _iso(start, edit.batch_start), edit.device,
                         _iso(start, edit.last_sync) if edit.last_sync is not None else ""])
    return out.getvalue()


# -- the pipeline ---------------------------------------------------------------------------------


def _scores(y: NDArray[np.bool_], p: NDArray[np.float64]) -> dict[str, float]:
    from shared.platform.metrics import average_precision, brier_score, roc_auc

    return {"roc_auc": round(roc_auc(y, p) or 0, 4), "pr_auc": round(average_precision(y, p) or 0, 4),
            "brier": round(brier_score(y, p), 4)}


def _flexible_quality(context: Any, tenant: str, holdout: int, world: World, labels: NDArray[np.bool_]
                      ) -> dict[str, dict[str, float]]:
    """A diagnostic, not a candidate: gradient-boosted trees on the model's own six features, the
    same rows and split. What they gain over the model is what a better shape of the same
    features could still gain; what the oracle gains over them, the features cannot see. Again
    with the entity's type beside them: how much of that is the types' own base rates."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shared.conflict.features import FEATURE_NAMES
    from shared.conflict.features_repository import training_rows

    with context.database.transaction() as tx:
        first, last = tx.fetch_all("SELECT min(received_at) AS a, max(received_at) AS b FROM sync_events")[0].values()
        columns, stored_labels = training_rows(tx, tenant, first, last + timedelta(microseconds=1))
    assert np.array_equal(stored_labels, labels), "the stored rows are not the generated edits in their order"
    x = np.column_stack([columns[name] for name in FEATURE_NAMES])
    types = np.array([world.entity_type[edit.entity] for edit in world.edits], dtype=np.float64)
    cut = len(labels) - holdout
    out = {}
    for name, inputs, categorical in (("six_features", x, None),
                                      ("six_features_and_entity_type", np.column_stack([x, types]), [x.shape[1]])):
        trees = HistGradientBoostingClassifier(max_iter=400, learning_rate=0.05, early_stopping=True, random_state=0,
                                               categorical_features=categorical)
        trees.fit(inputs[:cut], labels[:cut])
        out[name] = _scores(labels[cut:], trees.predict_proba(inputs[cut:])[:, 1])
    return out


def run_variant(variant: str, seed: int, users: int, days: int, work: Path) -> dict[str, Any]:
    import localpg
    from bench_conflict import _bench_database, _plain_logistic_quality

    # The history starts on a Monday at 00:00 UTC a week or more before its length: the same seed
    # is the same history whenever it runs (the rhythm is calendar-bound), and it ends before now.
    earliest = datetime.now(UTC) - timedelta(days=days + 7)
    start = earliest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=earliest.weekday())
    world = build_world(seed, users, days, start)
    probability, labels, overlapping = oracle(world, variant, seed)
    history = work / "history.csv"
    write_history(history, world, labels, overlapping, start)

    context, url, key, _ = _bench_database(work)
    env = {**os.environ, "MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": f"file://{work / 'objects'}",
           "MLSTACK_SIGNING_KEY": key}

    def mlstack(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True)
        return json.loads(done.stdout) if done.stdout.strip() else None

    try:
        mlstack("ingest", "sync-events", str(history), "--tenant", "bench", "--quiet")
        context.database.run_outside_transaction("VACUUM ANALYZE sync_events")
        trained = mlstack("train", "conflict", "--days-back", "90", "--activate")
        holdout = int(trained["split"]["holdout_rows"])
        rows = range(len(world.edits) - holdout, len(world.edits))
        (work / "requests.csv").write_text(requests_csv(world, rows, start), newline="")
        mlstack("score", "conflict", "--tenant", "bench", "--input", str(work / "requests.csv"),
                "--output", str(work / "scored.csv"))
        with (work / "scored.csv").open(newline="") as handle:
            model_p = np.array([float(r["probability"]) for r in csv.DictReader(handle)])
        tenant = context.tenants.find_tenant("bench").tenant_id
        plain = _plain_logistic_quality(context, tenant, holdout)
        trees = _flexible_quality(context, tenant, holdout, world, labels)
    finally:
        context.database.close()
        localpg.stop(work / "pg")
    y, oracle_p = labels[rows.start:], probability[rows.start:]
    return {"variant": variant, "seed": seed, "events": len(world.edits), "conflict_rate": round(float(labels.mean()), 4),
            "holdout_rows": holdout, "holdout_conflicts": int(y.sum()), "basis": trained["basis"], "l2": trained["l2"],
            "model": _scores(y, model_p), "plain_logistic_five_features": plain, "oracle": _scores(y, oracle_p),
            "boosted_trees_same_six_features": trees["six_features"],
            "boosted_trees_six_features_and_entity_type": trees["six_features_and_entity_type"],
            "model_training_holdout": {k: trained["metrics"].get(k) for k in ("roc_auc", "pr_auc", "brier")}}


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'variant':>9}{'seed':>5}{'events':>9}{'rate':>7}{'basis':>20}"
             f"{'model ROC/PR/Brier':>24}{'plain ROC/PR/Brier':>24}{'trees ROC/PR/Brier':>24}"
             f"{'trees+type ROC/PR/Brier':>24}{'oracle ROC/PR/Brier':>24}", "-" * 170]
    for r in results:
        cells = "".join(f"{f'{r[k]['roc_auc']:.4f}/{r[k]['pr_auc']:.4f}/{r[k]['brier']:.4f}':>24}"
                        for k in ("model", "plain_logistic_five_features", "boosted_trees_same_six_features",
                                  "boosted_trees_six_features_and_entity_type", "oracle"))
        lines.append(f"{r['variant']:>9}{r['seed']:>5}{r['events']:>9,}{r['conflict_rate']:>7.3f}"
                     f"{r['basis'] + ' ' + str(r['l2']):>20}{cells}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--users", type=int, default=460)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--generate-only", action="store_true",
                        help="only the history's size, conflict rate and the oracle's scores (no database)")
    args = parser.parse_args()
    results = []
    for variant in args.variant:
        for seed in args.seeds:
            if args.generate_only:
                start = datetime(2026, 1, 5, tzinfo=UTC)
                world = build_world(seed, args.users, args.days, start)
                p, y, _ = oracle(world, variant, seed)
                print(json.dumps({"variant": variant, "seed": seed, "events": len(y), "rate": round(float(y.mean()), 4),
                                  "oracle": _scores(y, p)}))
                continue
            work = Path(tempfile.mkdtemp(prefix="mlstack-gen2-"))
            try:
                results.append(run_variant(variant, seed, args.users, args.days, work))
                print(json.dumps(results[-1]), file=sys.stderr)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    if not results:
        return 0
    report = json.dumps({"load_average": os.getloadavg(), "results": results}, indent=2)
    if args.json:
        args.json.write_text(report)
    print(f"{report}\n\n{table(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
