"""The Chalice app: creates it and registers the blueprints. Nothing else lives here."""

from chalice import Chalice

from functions.api_conflict import conflict_blueprint
from functions.api_health import health_blueprint
from functions.api_models import models_blueprint
from functions.auth import auth_blueprint
from functions.http import handle_request
from functions.schedules import schedules_blueprint

app = Chalice(app_name="mlstack")
app.register_middleware(handle_request, "http")
app.register_blueprint(auth_blueprint)
app.register_blueprint(health_blueprint)
app.register_blueprint(models_blueprint)
app.register_blueprint(conflict_blueprint)
app.register_blueprint(schedules_blueprint)
