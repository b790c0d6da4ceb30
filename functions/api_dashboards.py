"""Dashboards people look at: HTML shells under /dashboards/ (public: they carry no data) whose
scripts read the same JSON routes automation uses, with the key the person signed in with; and the
JSON routes the pages need beyond each loop's own (conflict, fraud activity, OCR, monitoring).

The static files (pages' scripts and styles, and uPlot, vendored with its licence) ship inside the
package under functions/static/; nothing is fetched from elsewhere at run time."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from chalice import Blueprint, Response

from functions.api_ocr import MetricsQuery
from functions.http import api_route, json_response, parse_query, require_role
from shared.conflict.dashboard import conflict_dashboard
from shared.conflict.services import conflict_services
from shared.context import get_context
from shared.fraud.activity import fraud_activity
from shared.fraud.services import fraud_services
from shared.monitoring.dashboard import DashboardQuery, SeriesQuery, monitoring_dashboard, series_window
from shared.monitoring.services import monitoring_services
from shared.ocr.dashboard import ocr_dashboard
from shared.ocr.services import ocr_services

blueprint = Blueprint(__name__)
STATIC = Path(__file__).resolve().parent / "static"
# name in the URL -> (file under static/, content type): a fixed list, so no path reaches the disk
ASSETS = {
    "uplot.js": ("uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "uplot.css": ("uplot/uPlot.min.css", "text/css; charset=utf-8"),
    "dashboards.js": ("dashboards/dashboards.js", "text/javascript; charset=utf-8"),
    "dashboards.css": ("dashboards/dashboards.css", "text/css; charset=utf-8"),
}
PAGES = {
    "signin": "Sign in",
    "ocr": "ML training (OCR)",
    "conflict": "Conflict prediction",
    "fraud": "Fraud",
    "monitoring": "Unified monitoring",
}
# Scripts and styles only from this service; uPlot sizes its elements through style properties.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
                               " connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@lru_cache(maxsize=None)
def _read(relative: str) -> str:
    return (STATIC / relative).read_text(encoding="utf-8")


def page_html(page: str) -> str:
    return _read("dashboards/page.html").replace("{{page}}", page).replace("{{title}}", PAGES[page])


def _html(page: str) -> Response:
    return Response(body=page_html(page), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
                             **SECURITY_HEADERS})


def _page_view(page: str) -> Callable[[], Response]:
    def view() -> Response:
        return _html(page)

    view.__name__ = f"{page}_page"  # Chalice names each route's view
    return view


# The sign-in page at /dashboards, each loop's page below it; the pages are public shells (their
# data routes need a key).
for _page in PAGES:
    _path = "/dashboards" if _page == "signin" else f"/dashboards/{_page}"
    api_route(blueprint, _path, ["GET"], public=True)(_page_view(_page))


def _asset_view(name: str) -> Callable[[], Response]:
    relative, content_type = ASSETS[name]

    def asset() -> Response:
        return Response(body=_read(relative), status_code=200,
                        headers={"Content-Type": content_type, "Cache-Control": "public, max-age=300",
                                 "X-Content-Type-Options": "nosniff"})

    asset.__name__ = "asset_" + name.replace(".", "_")  # Chalice names each route's view
    return asset


# One literal route per asset (no path parameter): an unknown name is an unknown route (404).
for _name in ASSETS:
    api_route(blueprint, f"/dashboards/static/{_name}", ["GET"], public=True)(_asset_view(_name))


# -- the JSON the pages read (automation reads the same) ---------------------------------------
@api_route(blueprint, "/api/v2/conflict/dashboard", ["GET"])
def conflict_data() -> Response:
    principal = require_role(blueprint.current_request, "staff")
    return json_response(conflict_dashboard(conflict_services(get_context()), principal.tenant_id))


@api_route(blueprint, "/api/v2/fraud/activity", ["GET"])
def fraud_activity_data() -> Response:
    principal = require_role(blueprint.current_request, "staff")
    return json_response(fraud_activity(fraud_services(get_context()), principal.tenant_id))


@api_route(blueprint, "/api/v2/ocr/dashboard", ["GET"], with_query=True)
def ocr_data() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "staff")
    query = parse_query(request, MetricsQuery)
    return json_response(ocr_dashboard(ocr_services(get_context()), principal.tenant_id, query.target_share))


@api_route(blueprint, "/api/v2/monitoring/dashboard", ["GET"], with_query=True)
def monitoring_data() -> Response:
    request = blueprint.current_request
    require_role(request, "operator")
    query = parse_query(request, DashboardQuery)
    return json_response(monitoring_dashboard(monitoring_services(get_context()), query))


@api_route(blueprint, "/api/v2/monitoring/series", ["GET"], with_query=True)
def monitoring_series() -> Response:
    request = blueprint.current_request
    require_role(request, "operator")
    query = parse_query(request, SeriesQuery)
    return json_response(series_window(monitoring_services(get_context()), query))
