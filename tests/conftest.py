"""Shared fixtures. Integration tests need MLSTACK_TEST_DATABASE_URL and
MLSTACK_TEST_AWS_ENDPOINT_URL, which scripts/test.sh provides by starting real services."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.db import Database
from shared.adapters.migrate import migrate
from shared.context import AppContext, reset_context
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _required_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: run the suite with scripts/test.sh, which starts the services")
    return value


@pytest.fixture(scope="session")
def database_url() -> str:
    return _required_env("MLSTACK_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def aws_endpoint_url() -> str:
    return _required_env("MLSTACK_TEST_AWS_ENDPOINT_URL")


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials() -> None:
    # LocalStack accepts any credentials; never let a test find real ones.
    os.environ["AWS_ACCESS_KEY_ID"] = "test"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database)
    yield database
    database.close()


def truncate_all(database: Database) -> None:
    with database.transaction() as tx:
        tables = [
            row["tablename"]
            for row in tx.fetch_all(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            )
        ]
        if tables:
            tx.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def clean_database(migrated_database: Database) -> Database:
    """Each test starts from empty tables (migrations stay applied)."""
    truncate_all(migrated_database)
    return migrated_database


@pytest.fixture(scope="session")
def s3_bucket(aws_endpoint_url: str) -> str:
    from shared.adapters.aws import aws_client

    name = f"mlstack-test-{uuid.uuid4().hex[:12]}"
    aws_client("s3", endpoint_url=aws_endpoint_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def signing_key_hex() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def settings_env(
    database_url: str, aws_endpoint_url: str, s3_bucket: str, signing_key_hex: str
) -> dict[str, str]:
    """The environment a deployed function would see, pointing at the test services."""
    return {
        "MLSTACK_DATABASE_URL": database_url,
        "MLSTACK_OBJECT_STORE_URL": f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:8]}",
        "MLSTACK_AWS_ENDPOINT_URL": aws_endpoint_url,
        "MLSTACK_SIGNING_KEY": signing_key_hex,
        "MLSTACK_MODEL_REFRESH_SECONDS": "0",
        "MLSTACK_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def context(clean_database: Database, settings_env: dict[str, str]) -> Iterator[AppContext]:
    fields = {k.removeprefix("MLSTACK_").lower(): v for k, v in settings_env.items()}
    ctx = AppContext(Settings(**fields))
    yield ctx
    ctx.database.close()


@pytest.fixture
def app_environment(
    clean_database: Database, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Process environment for handlers run in-process through chalice.test.Client."""
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    reset_context()
    yield settings_env
    from shared.context import get_context

    get_context().database.close()
    reset_context()


@pytest.fixture
def tenant_keys(app_environment: dict[str, str]) -> dict[str, Any]:
    """Two tenants, each with a client and a staff key."""
    from shared.context import get_context

    directory = get_context().tenants
    result: dict[str, Any] = {}
    for slug in ("acme", "globex"):
        tenant = directory.create_tenant(slug, slug.title())
        result[slug] = {
            "tenant_id": tenant.tenant_id,
            "client": directory.create_key(tenant.tenant_id, "client").secret,
            "staff": directory.create_key(tenant.tenant_id, "staff").secret,
        }
    return result


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
