#!/usr/bin/env python3
"""Cold-start benchmark: a fresh process each run, as a new Lambda instance would be.

Lean path (what mlstack deploys): the unzipped `chalice package` zip plus the serving layer on
sys.path (no site-packages; boto3 from a copy standing in for the Lambda runtime's), import the
handler module, then the first conflict prediction through the Lambda entry point, with the model
fetched from S3 (LocalStack) and verified before it is parsed.

Naive path (the baseline, same run): import scikit-learn + xgboost + joblib, fetch the pickled
scikit-learn pipeline from S3, joblib.load it, predict one row.

Needs LocalStack on 127.0.0.1:4566 (scripts/localstack.py start) and starts its own PostgreSQL.

    .venv/bin/python scripts/bench_coldstart.py [--runs 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402

ENDPOINT = os.environ.get("MLSTACK_BENCH_AWS_ENDPOINT_URL", "http://127.0.0.1:4566")

# Runs inside the fresh process; prints one JSON line of phase timings in seconds.
LEAN_PROBE = r"""
import json, sys, time, types
t0 = time.perf_counter()
sys.path[:0] = sys.argv[1].split(":")
import app as handler_module
t_import = time.perf_counter()
from shared.context import get_context
context = get_context()
store = context.object_store  # imports boto3 and creates the S3 client
t_client = time.perf_counter()
version = context.registry.active_version("conflict", None)
t_lookup = time.perf_counter()
data = context.object_store.get(version.artifact_key)
t_fetch = time.perf_counter()
context.signer.verify(version.artifact_key, data, version.artifact_sha256, version.artifact_hmac)
t_verify = time.perf_counter()
event = {"resource": "/api/v2/predict/conflict", "path": "/api/v2/predict/conflict", "httpMethod": "POST",
         "headers": {"content-type": "application/json"}, "multiValueHeaders": {},
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "isBase64Encoded": False,
         "body": json.dumps({"domain": "voice", "user_id": "bench-user-001", "entity_type": "recording",
                             "entity_id": "rec-00001", "fields": ["notes"]}),
         "requestContext": {"resourcePath": "/api/v2/predict/conflict", "httpMethod": "POST",
                            "requestId": "cold-1", "path": "/api/api/v2/predict/conflict", "stage": "api",
                            "authorizer": {"tenant_id": sys.argv[2], "role": "client", "principalId": "bench"}}}
ctx = types.SimpleNamespace(aws_request_id="cold-1", function_name="f", memory_limit_in_mb=1024,
                            function_version="1", log_group_name="g", log_stream_name="s",
                            invoked_function_arn="arn:aws:lambda:us-east-1:1:function:f",
                            get_remaining_time_in_millis=lambda: 30000)
response = handler_module.app(event, ctx)
t_call = time.perf_counter()
body = json.loads(response["body"])
assert response["statusCode"] == 200 and body["degraded"] is False, response
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "pandas", "xgboost", "scipy"))
print(json.dumps({"import": t_import - t0, "boto3_and_s3_client": t_client - t_import,
                  "db_connect_and_lookup": t_lookup - t_client,
                  "s3_fetch": t_fetch - t_lookup, "verify": t_verify - t_fetch,
                  "first_request": t_call - t_verify, "total": t_call - t0, "heavy_modules": heavy}))
"""

NAIVE_PROBE = r"""
import io, json, sys, time
t0 = time.perf_counter()
import boto3, joblib, sklearn.linear_model, xgboost
import numpy as np
t_import = time.perf_counter()
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
data = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read()
t_fetch = time.perf_counter()
pipeline = joblib.load(io.BytesIO(data))
t_load = time.perf_counter()
pipeline.predict_proba(np.array([[1.0, 2.0, 0.1, 1.0, 0.5, 1.0]]))
t_call = time.perf_counter()
print(json.dumps({"import": t_import - t0, "s3_fetch": t_fetch - t_import, "unpickle": t_load - t_fetch,
                  "first_request": t_call - t_load, "total": t_call - t0}))
"""


def _build(work: Path) -> Path:
    """The deployment zip and the serving layer, unzipped as Lambda lays them out."""
    package = work / "package"
    subprocess.run([sys.executable, "scripts/package.py", "--stage", "dev", "--out", str(package)], cwd=ROOT,
                   check=True, capture_output=True)
    layers = work / "layers"
    subprocess.run([sys.executable, "scripts/build_layers.py", "--layer", "serving", "--out", str(layers)],
                   cwd=ROOT, check=True, capture_output=True)
    task = work / "var-task"
    zipfile.ZipFile(package / "deployment.zip").extractall(task)
    opt = work / "opt"
    zipfile.ZipFile(layers / "serving.zip").extractall(opt)
    # The Lambda runtime ships boto3; stand in for it with the venv's copy.
    runtime = work / "var-runtime"
    import boto3
    import botocore
    import dateutil
    import jmespath
    import s3transfer
    import six
    import urllib3

    for module in (boto3, botocore, jmespath, s3transfer, urllib3, dateutil):
        shutil.copytree(Path(module.__file__).parent, runtime / Path(module.__file__).parent.name)
    shutil.copy2(six.__file__, runtime / "six.py")
    # The real runtime ships compiled bytecode; so must its stand-in, or boto3 is compiled each run.
    from build_layers import compile_bytecode

    compile_bytecode(runtime, ddir="/var/runtime")
    return task, opt / "python", runtime


def _prepare(work: Path) -> dict[str, Any]:
    from dataclasses import replace

    import joblib

    from shared.adapters.aws import aws_client
    from shared.adapters.migrate import migrate
    from shared.conflict.demo_data import DemoConfig, generate_sync_history
    from shared.conflict.training import extract_conflict_training_data, train_candidate
    from shared.context import AppContext
    from shared.demo import seed_sync_history
    from shared.settings import Settings

    url = localpg.start(work / "pg", localpg.free_port(), fast=False)
    bucket = f"mlstack-bench-{uuid.uuid4().hex[:8]}"
    s3 = aws_client("s3", endpoint_url=ENDPOINT)
    s3.create_bucket(Bucket=bucket)
    env = {
        "MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": f"s3://{bucket}/models",
        "MLSTACK_AWS_ENDPOINT_URL": ENDPOINT, "MLSTACK_SIGNING_KEY": secrets.token_hex(32),
        "MLSTACK_LOG_LEVEL": "WARNING",
    }
    context = AppContext(Settings(**{k.removeprefix("MLSTACK_").lower(): v for k, v in env.items()}))
    migrate(context.database)
    tenant = context.tenants.create_tenant("bench", "Bench").tenant_id
    end = datetime.now(UTC)
    seed_sync_history(context, {"bench": tenant},
                      generate_sync_history(replace(DemoConfig(), tenants=("bench",), end=end)))
    result = train_candidate(context, end=end)
    context.registry.activate(result.version.version_id, actor="bench")
    # The naive path's artifact: the same model as a pickled scikit-learn pipeline.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = extract_conflict_training_data(context, end=end).split(0.2)[0]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train.design, train.labels)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    s3.put_object(Bucket=bucket, Key="naive/pipeline.joblib", Body=buffer.getvalue())
    context.database.close()
    return {"env": env, "tenant": tenant, "bucket": bucket}


def _run_probe(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstack-coldstart-"))
    # LocalStack takes any credentials; never reach for real ones.
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        task, layer, runtime = _build(work)
        prepared = _prepare(work)
        base_env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1", **prepared["env"]}
        lean_path = ":".join(str(p) for p in (task, layer, runtime))
        lean, naive = [], []
        for _ in range(args.runs):
            # -S: no site-packages; -B: no bytecode writing (Lambda's code folder is read-only).
            lean.append(_run_probe([sys.executable, "-S", "-B", "-c", LEAN_PROBE, lean_path, prepared["tenant"]],
                                   base_env))
            naive.append(_run_probe([sys.executable, "-B", "-c", NAIVE_PROBE, ENDPOINT, prepared["bucket"],
                                     "naive/pipeline.joblib"], base_env))
    finally:
        localpg.stop(work / "pg")
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "runs": args.runs,
        "lean": _summary(lean),
        "lean_heavy_modules": lean[0]["heavy_modules"],
        "naive": _summary(naive),
    }
    report["speedup"] = round(report["naive"]["total"] / report["lean"]["total"], 2)
    print(json.dumps(report, indent=2))
    print()
    print(f"{'phase (median of ' + str(args.runs) + ' fresh processes, s)':<46}{'lean':>9}{'naive':>9}")
    print("-" * 64)
    for phase in ("import", "boto3_and_s3_client", "db_connect_and_lookup", "s3_fetch", "verify", "unpickle", "first_request", "total"):
        lean_value = report["lean"].get(phase)
        naive_value = report["naive"].get(phase)
        fmt = lambda v: f"{v:>9.3f}" if v is not None else f"{'-':>9}"  # noqa: E731
        print(f"{phase:<46}{fmt(lean_value)}{fmt(naive_value)}")
    print(f"{'naive / lean':<46}{report['speedup']:>9}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
