"""`chalice package` produces a zip whose app imports and answers with nothing else on the path."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def serving_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving layer, built from layers/ for the Lambda platform, unzipped as Lambda would (/opt)."""
    out = tmp_path_factory.mktemp("layers")
    subprocess.run(
        [sys.executable, "scripts/build_layers.py", "--layer", "serving", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True,
    )
    opt = out / "opt"
    zipfile.ZipFile(out / "serving.zip").extractall(opt)
    return opt / "python"


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "out"
    subprocess.run(
        [sys.executable, "scripts/package.py", "--stage", "dev", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True,
    )
    return out


def test_package_contains_the_project_packages(package_dir: Path) -> None:
    names = set(zipfile.ZipFile(package_dir / "deployment.zip").namelist())
    assert "app.py" in names
    assert "functions/http.py" in names and "shared/platform/registry.py" in names
    assert "shared/adapters/migrations/0001_foundation.sql" in names
    # The dashboards' pages, scripts and styles (uPlot and its licence) are served from the package.
    from functions.api_dashboards import ASSETS

    assert {f"functions/static/{path}" for path, _ in ASSETS.values()} | {
        "functions/static/dashboards/page.html", "functions/static/uplot/LICENSE"} <= names
    # Training code never ships in the function zip's dependencies: it lives in the layers.
    assert not any(n.startswith(("sklearn/", "pandas/")) for n in names)
    # boto3 comes with the Lambda runtime; bundling it would cost 25 MB of the 250 MB budget.
    assert not any(n.startswith(("boto3/", "botocore/")) for n in names)
    # Bytecode ships precompiled: /var/task is read-only, so Lambda could not cache it.
    assert "shared/platform/__pycache__/registry.cpython-312.pyc" in names


def test_unzipped_package_imports_and_serves_health_without_site_packages(
    package_dir: Path, serving_layer: Path, tmp_path: Path
) -> None:
    target = tmp_path / "unzipped"
    zipfile.ZipFile(package_dir / "deployment.zip").extractall(target)
    # The event API Gateway would send, handed to the app as Lambda would call it.
    probe = """
import json, sys, types
sys.path[:0] = ['.', sys.argv[1]]
from app import app
event = {"resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {},
         "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
         "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "requestId": "probe-1",
                            "path": "/api/health", "stage": "api"}}
context = types.SimpleNamespace(aws_request_id="probe-1", function_name="mlstack-dev",
                                memory_limit_in_mb=512, function_version="1", log_group_name="g",
                                log_stream_name="s", invoked_function_arn="arn:aws:lambda:us-east-1:1:function:f",
                                get_remaining_time_in_millis=lambda: 30000)
response = app(event, context)
print(json.dumps({"routes": sorted(app.routes), "status": response["statusCode"],
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "pandas"))}))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "MLSTACK_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "MLSTACK_OBJECT_STORE_URL": f"file://{tmp_path / 'objects'}",
        "MLSTACK_SIGNING_KEY": "ab" * 32,
    }
    # -S: no site-packages, so every import must come from the zip, the layer or the standard library.
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(serving_layer)], cwd=target, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "/health" in report["routes"] and "/api/v2/models" in report["routes"]
    assert report["status"] == 503  # imports fine, and says the unreachable database is down
    assert report["modules"] == []
