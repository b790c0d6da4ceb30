"""The Chalice app: creates it and registers the blueprints. Nothing else lives here."""

from importlib import import_module

from chalice import Chalice

from functions.api_dashboards import blueprint as dashboards_blueprint
from functions.api_docs import docs_blueprint
from functions.api_health import health_blueprint
from functions.auth import auth_blueprint
from functions.http import handle_request
from functions.schedules import schedules_blueprint
from functions.workers import workers_blueprint
from shared.slices import SLICES

app = Chalice(app_name="mlstack")
app.register_middleware(handle_request, "http")
app.register_blueprint(auth_blueprint)
app.register_blueprint(health_blueprint)
app.register_blueprint(docs_blueprint)
for loop in SLICES:  # each slice's routes, from the one list of slices
    if loop.routes_module:
        app.register_blueprint(import_module(loop.routes_module).blueprint)
app.register_blueprint(dashboards_blueprint)  # pages under /dashboards/ and the JSON they read
app.register_blueprint(schedules_blueprint)
app.register_blueprint(workers_blueprint)
