"""The OpenAPI 3.1 document of the HTTP API, generated from the pydantic models the handlers
validate with, plus response models that describe what they answer.

`GET /openapi.json` serves it (public: it describes the API, not a tenant). A test checks that
every route of the app is in it, and the contract test (schemathesis) checks the app against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema

from functions.api_dashboards import ASSETS
from functions.api_models import ActivateBody, ListModelsQuery, RollbackBody
from functions.api_monitoring import AcknowledgeBody
from functions.api_ocr import MetricsQuery
from functions.http import MAX_BODY_BYTES, MAX_JSON_DEPTH, TENANT_ROLES
from shared.conflict.events import SyncEvent, SyncEventBatch
from shared.conflict.prediction import ConflictPredictionRequest
from shared.fraud.intake import AttendanceBatch, AttendanceEventIn, FraudLabelBatch, FraudLabelIn, SiteBatch, SiteIn
from shared.fraud.operating_point import OperatingPointBody
from shared.fraud.prediction import StoredEventRef
from shared.monitoring.dashboard import DashboardQuery, SeriesQuery
from shared.monitoring.incidents import IncidentsQuery, SilenceBody
from shared.monitoring.intake import MetricBatch
from shared.ocr.readings import CorrectionRequest, OcrReading, OcrReadingBatch


# -- what the routes answer ----------------------------------------------------------------------
class FieldProblemView(BaseModel):
    field: str
    reason: str


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_input, not_found, dependency_unavailable")
    message: str
    fields: list[FieldProblemView] = Field(description="for a 400: each refused field and why")


class ErrorBody(BaseModel):
    """Every refusal, from the function or from API Gateway itself."""

    error: ErrorDetail


class ModelVersionView(BaseModel):
    version_id: str
    label: str
    kind: str
    scope: Literal["global", "tenant"]
    version: int
    status: str
    challenger_share: float | None
    shadow: bool
    artifact_sha256: str
    manifest: dict[str, Any]
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    activated_at: str | None
    retired_at: str | None


class ModelList(BaseModel):
    models: list[ModelVersionView]


class StoredEventView(BaseModel):
    client_event_id: str
    event_id: int | str


class StoredSyncEventView(BaseModel):
    client_event_id: str
    event_id: str = Field(json_schema_extra={"format": "uuid"})  # random: reveals no volume


class SyncIntakeAnswer(BaseModel):
    accepted: int = Field(ge=0)
    events: list[StoredSyncEventView]


class AttendanceIntakeAnswer(BaseModel):
    accepted: int = Field(ge=0)
    events: list[StoredEventView]


class ConflictAnswer(BaseModel):
    prediction_id: str
    probability: float = Field(ge=0, le=1)
    risk_level: Literal["low", "medium", "high"]
    model_version: str
    variant: Literal["champion", "challenger", "heuristic"]
    scope: Literal["tenant", "global", "heuristic"]
    confidence: float = Field(ge=0, le=1)
    features: dict[str, float]
    degraded: bool


class StoredConflictPrediction(BaseModel):
    model_config = ConfigDict(extra="allow")  # the kind's subject columns
    prediction_id: str
    request_id: str
    features: dict[str, float]
    probability: float = Field(ge=0, le=1)
    risk_level: Literal["low", "medium", "high"]
    model_version: str
    variant: Literal["champion", "challenger", "heuristic"]
    scope: Literal["tenant", "global", "heuristic"]
    predicted_at: str
    outcome: bool | None
    outcome_at: str | None


class CountAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")  # {"sites": n} or {"labels": n}


class FraudReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    feature: str


class FraudAnswer(BaseModel):
    prediction_id: str
    client_event_id: str
    fraud_score: float = Field(ge=0, le=1)
    decision: Literal["allow", "review", "block"]
    reasons: list[FraudReason]
    thresholds: dict[str, Any]
    model_version: str
    variant: Literal["champion", "challenger", "heuristic"]
    scope: Literal["tenant", "global", "heuristic"]
    degraded: bool
    features: dict[str, float | None]


class StoredFraudPrediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    prediction_id: str
    fraud_score: float = Field(ge=0, le=1)
    decision: Literal["allow", "review", "block"]
    model_version: str
    scope: Literal["tenant", "global", "heuristic"]


class OperatingPointView(BaseModel):
    model_config = ConfigDict(extra="allow")
    review_threshold: float
    block_threshold: float
    source: Literal["tenant", "model", "default"]
    tradeoff: list[dict[str, Any]]


class OcrReadingAnswer(BaseModel):
    reading_id: str
    normalized: str | None
    error_probability: float | None = Field(ge=0, le=1, description="None: imported history, never scored")
    captured: bool
    reasons: list[str]
    model_version: str | None = Field(description="what scored it: a model version's label, or the heuristic's")
    degraded: bool = Field(description="true when the heuristic answered (no usable model)")


class OcrReadingBatchAnswer(BaseModel):
    readings: list[OcrReadingAnswer]


class OcrReadingsAnswer(RootModel[OcrReadingAnswer | OcrReadingBatchAnswer]):
    """One reading's answer, or a batch's in input order."""


class OpenObject(BaseModel):
    """A JSON object whose fields the route's section of README describes."""

    model_config = ConfigDict(extra="allow")


class MetricsAnswer(BaseModel):
    accepted: int = Field(ge=0)
    stored: int = Field(ge=0)
    duplicates: int = Field(ge=0, description="points whose (source, metric, ts) was already stored")


class IncidentList(BaseModel):
    incidents: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, Any]
    active_models: list[str]


# -- the routes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type[BaseModel]
    roles: tuple[str, ...] = ()
    public: bool = False
    body: tuple[type[BaseModel], ...] = ()
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default=())
    media: tuple[str, ...] = ()  # a 200 that is not JSON: its content types (the dashboards' pages and assets)


ANY_ROLE = TENANT_ROLES
# Bodies a route takes when given and does without.
OPTIONAL_BODIES = (ActivateBody, AcknowledgeBody)
HTML = ("text/html; charset=utf-8",)
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "Database, object store and model artifacts usable; 503 when not", Health,
              public=True),
    Operation("GET", "/openapi.json", "This document", BaseModel, public=True),
    Operation("GET", "/api/v2/models", "The tenant's own and the global model versions", ModelList, ANY_ROLE,
              query=ListModelsQuery, errors=(400,)),
    Operation("GET", "/api/v2/models/{version_id}", "One version with its manifest", ModelVersionView, ANY_ROLE,
              errors=(404,)),
    Operation("POST", "/api/v2/models/{version_id}/activate", "Activate one of the tenant's own versions",
              ModelVersionView, ("staff",), body=(ActivateBody,), errors=(400, 404, 409)),
    Operation("POST", "/api/v2/models/rollback", "Re-activate the version the active one replaced",
              ModelVersionView, ("staff",), body=(RollbackBody,), errors=(400, 409)),
    Operation("POST", "/api/v2/events/sync", "Store sync events; idempotent on client_event_id", SyncIntakeAnswer,
              ("client", "service"), body=(SyncEvent, SyncEventBatch), errors=(400, 409)),
    Operation("POST", "/api/v2/predict/conflict", "Conflict probability of a sync, logged", ConflictAnswer,
              ANY_ROLE, body=(ConflictPredictionRequest,), errors=(400,)),
    Operation("GET", "/api/v2/predictions/conflict/{prediction_id}", "A logged prediction and its outcome",
              StoredConflictPrediction, ANY_ROLE, errors=(404,)),
    Operation("POST", "/api/v2/sites", "Register or update sites", CountAnswer, ("staff",),
              body=(SiteIn, SiteBatch), errors=(400,)),
    Operation("POST", "/api/v2/attendance/events", "Store attendance events; idempotent on client_event_id",
              AttendanceIntakeAnswer, ("client", "service"), body=(AttendanceEventIn, AttendanceBatch), errors=(400, 409)),
    Operation("POST", "/api/v2/fraud/labels", "Investigators' verdicts on stored events", CountAnswer, ("staff",),
              body=(FraudLabelIn, FraudLabelBatch), errors=(400, 404)),
    Operation("POST", "/api/v2/predict/fraud", "Fraud score, decision and reasons of an attendance event, logged",
              FraudAnswer, ANY_ROLE, body=(AttendanceEventIn, StoredEventRef), errors=(400, 404, 409)),
    Operation("GET", "/api/v2/predictions/fraud/{prediction_id}", "A logged fraud score and its outcome",
              StoredFraudPrediction, ANY_ROLE, errors=(404,)),
    Operation("GET", "/api/v2/fraud/operating-point", "The tenant's thresholds and the trade-off table",
              OperatingPointView, ("staff",)),
    Operation("PUT", "/api/v2/fraud/operating-point", "Move the tenant's thresholds", OperatingPointView, ("staff",),
              body=(OperatingPointBody,), errors=(400,)),
    Operation("GET", "/api/v2/fraud/dashboard", "The fraud dashboard's data: quality, decisions, importance",
              OpenObject, ("staff",)),
    Operation("POST", "/api/v2/ocr/readings", "Assess and store OCR readings; idempotent on client_reading_id",
              OcrReadingsAnswer, ("client", "service"), body=(OcrReading, OcrReadingBatch), errors=(400, 409)),
    Operation("POST", "/api/v2/ml-training/corrections", "Record a correction of a reading", OpenObject, ANY_ROLE,
              body=(CorrectionRequest,), errors=(400, 404, 409)),
    Operation("GET", "/api/v2/ocr/metrics", "The OCR loop's quality figures", OpenObject, ("staff",),
              query=MetricsQuery, errors=(400,)),
    Operation("POST", "/api/v2/metrics", "Store metric points (the agent's pushes); idempotent per series and ts",
              MetricsAnswer, ("operator", "service"), body=(MetricBatch,), errors=(400,)),
    Operation("GET", "/api/v2/monitoring/incidents", "Incidents with their alerts (staff: their models' only)",
              IncidentList, ("operator", "staff"), query=IncidentsQuery, errors=(400,)),
    Operation("POST", "/api/v2/monitoring/incidents/{incident_id}/acknowledge", "Acknowledge an open incident",
              OpenObject, ("operator", "staff"), body=(AcknowledgeBody,), errors=(400, 404)),
    Operation("GET", "/api/v2/monitoring/silences", "Silences not yet ended", OpenObject, ("operator",)),
    Operation("POST", "/api/v2/monitoring/silences", "Silence alerts of a source (and metric) for a while",
              OpenObject, ("operator",), body=(SilenceBody,), errors=(400,)),
    Operation("GET", "/api/v2/monitoring/drift", "Latest drift report per model input (staff: their own)",
              OpenObject, ("operator", "staff")),
    Operation("GET", "/metrics", "The service's counters and histograms, Prometheus text format", BaseModel,
              ("operator",)),
    # The dashboards: pages (public, no data in them) and the JSON they read with the signed-in key.
    Operation("GET", "/dashboards", "Dashboards: the sign-in page (HTML, no data)", BaseModel, public=True,
              media=HTML),
    Operation("GET", "/dashboards/ocr", "The OCR dashboard page (HTML shell; data from /api/v2/ocr/dashboard)",
              BaseModel, public=True, media=HTML),
    Operation("GET", "/dashboards/conflict", "The conflict dashboard page (HTML shell; data from "
              "/api/v2/conflict/dashboard)", BaseModel, public=True, media=HTML),
    Operation("GET", "/dashboards/fraud", "The fraud dashboard page (HTML shell; data from /api/v2/fraud/*)",
              BaseModel, public=True, media=HTML),
    Operation("GET", "/dashboards/monitoring", "The unified monitoring page (HTML shell; data from "
              "/api/v2/monitoring/*)", BaseModel, public=True, media=HTML),
    *(Operation("GET", f"/dashboards/static/{name}", f"The dashboards' {name} (served from the package)", BaseModel,
                public=True, media=(content_type,)) for name, (_, content_type) in ASSETS.items()),
    Operation("GET", "/api/v2/conflict/dashboard", "The conflict dashboard's data: versions, live metrics per day, "
              "predictions by risk, outcomes, calibration", OpenObject, ("staff",)),
    Operation("GET", "/api/v2/fraud/activity", "PR-AUC per version, false-positive rate per day, recent high scores "
              "with reasons", OpenObject, ("staff",)),
    Operation("GET", "/api/v2/ocr/dashboard", "The OCR loop's quality figures and the latest labelling batch",
              OpenObject, ("staff",), query=MetricsQuery, errors=(400,)),
    Operation("GET", "/api/v2/monitoring/dashboard", "Infrastructure health, anomalies with the metric around "
              "each, alerts that fired together", OpenObject, ("operator",), query=DashboardQuery, errors=(400,)),
    Operation("GET", "/api/v2/monitoring/series", "One series over a window, min/max/mean per bucket",
              OpenObject, ("operator",), query=SeriesQuery, errors=(400, 404)),
)

ERROR_MEANINGS = {
    400: "the request is invalid: `fields` names each problem",
    401: "no API key",
    403: "the key is unknown or revoked, or its role may not use this route",
    404: "no such resource for this tenant (or no such route)",
    405: "the route does not take this method",
    409: "conflicts with the current state",
    415: "the body is not application/json",
    429: "throttled (deployed: API Gateway stage limits)",
    503: "a dependency is unavailable; retry after Retry-After seconds",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": ERROR_MEANINGS[status], "content": _json(_ref(ErrorBody))}
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return response


def _operation(op: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}_{op.path}"}
    if op.roles:
        entry["description"] = f"Roles: {', '.join(op.roles)}."
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _path_names(op.path)
    ]
    if op.query is not None:
        for name, prop in op.query.model_json_schema()["properties"].items():
            parameters.append({"name": name, "in": "query", "required": False, "schema": prop})
    if parameters:
        entry["parameters"] = parameters
    if op.body:
        schema = _ref(op.body[0]) if len(op.body) == 1 else {"oneOf": [_ref(m) for m in op.body]}
        entry["requestBody"] = {
            "required": op.body[0] not in OPTIONAL_BODIES,
            "description": f"JSON, at most {MAX_BODY_BYTES} bytes and {MAX_JSON_DEPTH} levels deep",
            "content": _json(schema),
        }
    ok_content = _json({"type": "object"} if op.response is BaseModel else _ref(op.response))
    if op.path == "/metrics":
        ok_content = {"text/plain": {"schema": {"type": "string"}}}
    if op.media:
        ok_content = {media: {"schema": {"type": "string"}} for media in op.media}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok_content}}
    if op.path == "/health":
        responses["503"] = {"description": "a dependency is down", "content": _json(_ref(Health))}
    statuses = set(op.errors) | {405, 503}
    if op.body:
        statuses |= {400, 415}
    if not op.public:
        entry["security"] = [{"apiKey": []}]
        # 400 too: a keyed route refuses a query parameter it does not read (functions/http.py).
        statuses |= {400, 401, 403, 429}
    for status in sorted(statuses):
        responses.setdefault(str(status), _error_response(status))
    entry["responses"] = responses
    return entry


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [ErrorBody, Health]
    for op in OPERATIONS:
        models.extend(op.body)
        if op.response is not BaseModel:
            models.append(op.response)
    unique = list(dict.fromkeys(models))
    _, schemas = models_json_schema(
        [(m, "validation") for m in unique], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlstack",
            "version": "2",
            "description": "Multi-tenant ML service. Every route but /health and /openapi.json needs "
            "`Authorization: Bearer <key>`; the tenant comes from the key. Errors: "
            '`{"error": {"code", "message", "fields"}}` with an X-Request-Id header.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
