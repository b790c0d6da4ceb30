"""A live conflict answer in ONE statement and one round trip: the features of the request (the
counts of `features_repository.LIVE_COUNTS_SQL` and the arithmetic of
`features.features_from_counts`), the serving model's probability (a logistic regression is a SQL
expression of the features), and the prediction log rows (answer, and shadow if any), inserted in
the same statement and committed when it returns. So an answer exists only once its log row is
durable, and a statement that fails answers nothing and logs nothing.

The SQL forms of the models mirror shared/conflict/model.py (its bases, the legacy form and the
heuristic); tests/integration/test_conflict_answers.py holds them equal to numpy. A model without
a SQL form (another kind's, say) makes `answer` return None: the caller then takes the path of
features, model and insert in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shared.adapters.db import Database
from shared.conflict.features import (
    EDIT_FREQUENCY_DAYS,
    FEATURE_NAMES,
    HOUR_US,
    HOURS_CAP,
    PRIOR_CONFLICTS,
    PRIOR_SYNCS,
    SUPPORT_NAMES,
    from_us,
)
from shared.conflict.features_repository import LIVE_COUNTS_SQL, FeatureRequest
from shared.conflict.model import (
    BASES,
    HINGED,
    LEGACY_LOG1P,
    RISK_THRESHOLDS,
    BasisLogisticModel,
    LinearConflictModel,
)
from shared.conflict.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS
from shared.platform.serving import Serving


@dataclass(frozen=True)
class LoggedAnswer:
    row: dict[str, Any]  # FEATURE_NAMES, SUPPORT_NAMES, as_of (datetime)
    probability: float
    risk_level: str
    prediction_id: str


class ConflictAnswers(Protocol):
    def answer(self, request: FeatureRequest, serving: Serving) -> LoggedAnswer | None:
        """Features, probability and the logged rows in one committed step; None when the serving
        models have no one-statement form."""
        ...


# -- the models as SQL expressions ------------------------------------------------------------------


def _number(value: float) -> str:
    # repr is the shortest text that reads back as the same double; float8 input reads it exactly.
    return f"CAST('{float(value)!r}' AS float8)"


def _log1p(column: str) -> str:
    return f"ln(1.0 + GREATEST({column}, 0.0))"


def _positive(column: str) -> str:
    return f"CAST({column} > 0 AS integer)::float8"


def _basis_sql(name: str, knots: Mapping[str, tuple[float, ...]]) -> list[str]:
    """model.basis, column for column."""
    columns = [_log1p("concurrent_editors"), _log1p("hours_since_last_sync"), "user_conflict_rate",
               _log1p("entity_edit_frequency"), "field_overlap_score", _log1p("other_edits_since_sync")]
    level = BASES.index(name)
    others = _positive("other_edits_since_sync")
    if level >= 1:
        columns += [others, _positive("field_overlap_score"), _positive("concurrent_editors")]
    if level >= 2:
        hours = _log1p("hours_since_last_sync")
        columns += [f"field_overlap_score * {hours}", f"{others} * {hours}",
                    f"field_overlap_score * {_log1p('other_edits_since_sync')}",
                    f"{others} * user_conflict_rate", f"{others} * {_log1p('entity_edit_frequency')}"]
    if level >= 3:
        for feature in HINGED:
            for knot in knots.get(feature, ()):
                columns.append(f"GREATEST({_log1p(feature)} - {_number(knot)}, 0.0)")
    return columns


def _logistic(columns: list[str], means: Any, scales: Any, coefficients: Any, intercept: float) -> str:
    terms = [f"(({column}) - {_number(m)}) / {_number(s)} * {_number(c)}"
             for column, m, s, c in zip(columns, means, scales, coefficients, strict=True)]
    logit = " + ".join([_number(intercept), *terms])
    return f"1.0 / (1.0 + exp(-LEAST(GREATEST({logit}, -500.0), 500.0)))"


HEURISTIC_SQL = (
    "1.0 / (1.0 + exp(-(-3.0 + 2.5 * field_overlap_score + 0.6 * ln(1.0 + concurrent_editors)"
    " + 0.3 * ln(1.0 + hours_since_last_sync) + 4.0 * (user_conflict_rate - 0.1))))"
)


def probability_sql(model: object | None) -> str | None:
    """The model's probability as an expression of the feature columns; None when it has none."""
    if model is None:
        return HEURISTIC_SQL
    if isinstance(model, BasisLogisticModel):
        return _logistic(_basis_sql(model.basis_name, model.knots), model.means, model.scales,
                         model.coefficients, model.intercept)
    if isinstance(model, LinearConflictModel):
        columns = [_log1p(name) if name in LEGACY_LOG1P else name for name in model.feature_names]
        return _logistic(columns, model.means, model.scales, model.coefficients, model.intercept)
    return None


def risk_level_sql(probability: str) -> str:
    cases = " ".join(f"WHEN {probability} >= {threshold!r} THEN '{level}'" for threshold, level in RISK_THRESHOLDS)
    return f"CASE {cases} ELSE 'low' END"


# -- the statement -------------------------------------------------------------------------------

# Features from the counts, as features_from_counts computes them (same operations in the same
# order on doubles, so the same numbers).
_FEATURES = f"""
SELECT c.*,
       CAST(c.editors AS float8) AS concurrent_editors,
       CASE WHEN c.reference IS NULL THEN {HOURS_CAP!r}
            ELSE LEAST(GREATEST(CAST(c.as_of - c.reference AS float8) / {float(HOUR_US)!r}, 0.0), {HOURS_CAP!r})
       END AS hours_since_last_sync,
       (CAST(c.user_conflicts AS float8) + {PRIOR_CONFLICTS!r}) / (CAST(c.user_syncs AS float8) + {PRIOR_SYNCS!r})
           AS user_conflict_rate,
       CAST(c.entity_edits AS float8) / {float(EDIT_FREQUENCY_DAYS)!r} AS entity_edit_frequency,
       CASE WHEN c.my_fields > 0 THEN CAST(c.overlapping_fields AS float8) / CAST(c.my_fields AS float8) ELSE 0.0
       END AS field_overlap_score,
       CAST(c.others_since AS float8) AS other_edits_since_sync,
       CAST(c.user_syncs AS float8) AS support_user_syncs,
       CAST(c.entity_edits AS float8) AS support_entity_edits
FROM (SELECT counts.*, COALESCE(CAST(extract(epoch FROM CAST(:last_sync AS timestamptz)) * 1000000 AS bigint),
                                counts.last_user_sync) AS reference
      FROM counts) c
"""
_LOGGED_COLUMNS = ("tenant_id", "request_id", *SUBJECT_COLUMNS, "features", "probability", "risk_level",
                   "model_version_id", "model_label", "variant", "scope", "predicted_at")
_SUBJECT_VALUES = {
    "user_id": "CAST(:user_id AS text)", "domain": "CAST(:domain AS text)",
    "entity_type": "CAST(:entity_type AS text)", "entity_id": "CAST(:entity_id AS text)",
    "fields": "CAST(:fields AS text[])", "device_id": "CAST(:device_id AS text)",
    "client_last_sync_at": "CAST(:last_sync AS timestamptz)",
}
assert set(_SUBJECT_VALUES) == set(SUBJECT_COLUMNS)


def _answer_sql(answer: str, shadow: str | None) -> str:
    features = ", ".join(f"'{name}', s.{name}" for name in FEATURE_NAMES)
    values = [
        "CAST(:tenant AS uuid)", "CAST(:request_id AS text)", *(_SUBJECT_VALUES[c] for c in SUBJECT_COLUMNS),
        f"jsonb_build_object({features})", "v.probability", risk_level_sql("v.probability"), "v.version_id",
        "v.label", "v.variant", "v.scope", "CAST(:as_of AS timestamptz)",
    ]
    rows = ["(s.probability, CAST(:version_id AS uuid), CAST(:label AS text), CAST(:variant AS text),"
            " CAST(:scope AS text))"]
    if shadow is not None:
        rows.append("(s.shadow_probability, CAST(:shadow_version_id AS uuid), CAST(:shadow_label AS text),"
                    " 'shadow', CAST(:shadow_scope AS text))")
    return f"""
WITH counts AS MATERIALIZED ({LIVE_COUNTS_SQL}),
features AS MATERIALIZED ({_FEATURES}),
scored AS MATERIALIZED (
    SELECT f.*, {answer} AS probability, {shadow or 'CAST(NULL AS float8)'} AS shadow_probability FROM features f
),
logged AS (
    INSERT INTO {PREDICTIONS_TABLE} ({', '.join(_LOGGED_COLUMNS)})
    SELECT {', '.join(values)}
    FROM scored s CROSS JOIN LATERAL (VALUES {', '.join(rows)}) AS v(probability, version_id, label, variant, scope)
    RETURNING prediction_id, variant
)
SELECT s.*, {risk_level_sql('s.probability')} AS risk_level,
       (SELECT CAST(l.prediction_id AS text) FROM logged l WHERE l.variant <> 'shadow') AS prediction_id
FROM scored s
"""


# The statement of each (answering, shadow) pair of loaded models, built once: keyed by the
# models' identities, holding the models so that an identity is never reused while cached.
_STATEMENTS: dict[tuple[int, int], tuple[object, object, str | None]] = {}
STATEMENTS_KEPT = 64


def _statement(serving: Serving) -> str | None:
    answering = serving.answering.model if serving.answering else None
    shadow = serving.shadow.model if serving.shadow else None
    key = (id(answering), id(shadow) if serving.shadow else -1)
    cached = _STATEMENTS.get(key)
    if cached is None:
        answer = probability_sql(answering)
        shadow_sql = probability_sql(shadow) if serving.shadow else None
        usable = answer is not None and (shadow_sql is not None or serving.shadow is None)
        if len(_STATEMENTS) >= STATEMENTS_KEPT:
            _STATEMENTS.clear()
        statement = _answer_sql(answer, shadow_sql) if answer is not None and usable else None
        cached = _STATEMENTS[key] = (answering, shadow, statement)
    return cached[2]


class PostgresConflictAnswers:
    def __init__(self, database: Database) -> None:
        self._database = database

    def answer(self, request: FeatureRequest, serving: Serving) -> LoggedAnswer | None:
        statement = _statement(serving)
        if statement is None:
            return None
        shadow = serving.shadow.version if serving.shadow else None
        row = self._database.single_statement(
            statement,
            tenant=request.tenant_id, request_id=request.request_id, user_id=request.user_id, domain=request.domain,
            entity_type=request.entity_type, entity_id=request.entity_id, device_id=request.device_id,
            last_sync=request.client_last_sync_at, fields=list(request.fields) if request.fields else None,
            as_of=request.as_of, version_id=serving.version_id, label=serving.label, variant=serving.variant,
            scope=serving.scope,
            **({"shadow_version_id": shadow.version_id, "shadow_label": shadow.label, "shadow_scope": shadow.scope}
               if shadow else {}),
        )[0]
        features: dict[str, Any] = {name: row[name] for name in (*FEATURE_NAMES, *SUPPORT_NAMES)}
        features["as_of"] = from_us(row["as_of"])
        return LoggedAnswer(features, float(row["probability"]), str(row["risk_level"]), str(row["prediction_id"]))
