"""The adapters against the real services: PostgreSQL reconnects, S3, Secrets Manager."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest

from shared.adapters.aws import aws_client
from shared.adapters.db import Database
from shared.adapters.objectstore import S3ObjectStore, tenant_key
from shared.context import AppContext
from shared.errors import NotFound
from shared.settings import Settings

pytestmark = pytest.mark.integration


def test_a_broken_connection_is_reopened_on_the_next_transaction(database_url: str) -> None:
    database = Database(database_url)
    with database.transaction() as tx:
        pid = tx.fetch_value("SELECT pg_backend_pid()")
    killer = Database(database_url)
    with killer.transaction() as tx:
        assert tx.fetch_value("SELECT pg_terminate_backend(:pid)", pid=pid) is True
    # A warm function's cached connection died between invocations; the next use case still runs.
    with database.transaction() as tx:
        assert tx.fetch_value("SELECT pg_backend_pid()") != pid
        pid = tx.fetch_value("SELECT pg_backend_pid()")
    with killer.transaction() as tx:
        assert tx.fetch_value("SELECT pg_terminate_backend(:pid)", pid=pid) is True
    # The same for a single statement (a live prediction): it runs once on a fresh connection.
    assert database.single_statement("SELECT pg_backend_pid() AS pid")[0]["pid"] != pid
    database.close()
    killer.close()


def test_sessions_read_days_in_utc_whatever_the_servers_or_roles_zone(clean_database: Database, database_url: str) -> None:
    # A role whose zone is Auckland's (as a server installed on such a host would default to):
    # 23:30 UTC is already the next day there, and a dashboard's day would shift.
    role = f"tz_probe_{secrets.token_hex(4)}"
    with clean_database.transaction() as tx:
        tx.execute(f"CREATE ROLE {role} LOGIN")
        tx.execute(f"ALTER ROLE {role} SET timezone = 'Pacific/Auckland'")
    database = Database(database_url.replace("postgres@", f"{role}@", 1))
    try:
        with database.transaction() as tx:
            day = tx.fetch_value("SELECT date_trunc('day', timestamptz '2026-01-01 23:30:00+00')::text")
        assert day == "2026-01-01 00:00:00+00"
    finally:
        database.close()
        with clean_database.transaction() as tx:
            tx.execute(f"DROP ROLE {role}")


def test_a_failed_transaction_leaves_nothing_and_the_connection_usable(clean_database: Database) -> None:
    with pytest.raises(RuntimeError):
        with clean_database.transaction() as tx:
            tx.execute("INSERT INTO tenants (slug, name) VALUES ('half', 'Half written')")
            raise RuntimeError("the use case failed after its first write")
    with clean_database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM tenants") == 0


def test_s3_adapter_round_trip(aws_endpoint_url: str, s3_bucket: str) -> None:
    store = S3ObjectStore(s3_bucket, f"adapter-{uuid.uuid4().hex[:6]}", aws_client("s3", endpoint_url=aws_endpoint_url))
    store.ping()
    key = tenant_key("t1", "models", "a.json")
    store.put(key, b"one")
    store.put(key, b"two")
    assert store.get(key) == b"two"
    assert store.list("tenants/t1/") == [key]
    store.delete(key)
    with pytest.raises(NotFound):
        store.get(key)


def test_settings_from_secrets_manager(aws_endpoint_url: str, database_url: str, s3_bucket: str) -> None:
    client = aws_client("secretsmanager", endpoint_url=aws_endpoint_url)
    key_hex = secrets.token_hex(32)
    name = f"mlstack-test-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=f"{name}/signing", SecretString=json.dumps({"signing_key": key_hex}))
    from urllib.parse import urlparse

    url = urlparse(database_url)
    client.create_secret(Name=f"{name}/db", SecretString=json.dumps({
        "host": url.hostname, "port": url.port, "username": url.username or "postgres",
        "password": "p@ss:w/rd", "dbname": url.path.lstrip("/"), "sslmode": "disable",
    }))
    context = AppContext(Settings(
        database_secret_id=f"{name}/db", signing_key_secret_id=f"{name}/signing",
        object_store_url=f"s3://{s3_bucket}/secrets-test", aws_endpoint_url=aws_endpoint_url,
    ))
    digest, signature = context.signer.sign("k", b"data")
    from shared.adapters.signing import ArtifactSigner

    ArtifactSigner(bytes.fromhex(key_hex)).verify("k", b"data", digest, signature)
    assert "p%40ss%3Aw%2Frd@" in context.database_url  # the password survives URL quoting
    context.database.ping()  # the test server trusts local connections, whatever the password
    context.database.close()


def test_the_demo_tenant_and_its_keys_are_created_once(context: AppContext) -> None:
    from shared.demo import ensure_demo

    first = ensure_demo(context, with_models=False)
    keys = [line.split()[-1] for line in first if "key:" in line]
    assert len(keys) == 2 and all(key.startswith("mlk_") for key in keys)
    principal = context.tenants.authenticate(keys[0])
    assert principal is not None and principal.role == "client"
    second = ensure_demo(context, with_models=False)
    assert not any("key:" in line for line in second) and any("exists" in line for line in second)


def test_a_binary_copy_row_carries_bytes_nulls_and_settings_and_splices_nothing(clean_database: Database) -> None:
    hostile = "x'); DROP TABLE tenants; --"
    with clean_database.transaction() as tx:
        row = tx.copy_out_row(
            "SELECT int8send(7), CAST(NULL AS bytea), convert_to(current_setting('mlstack.probe'), 'UTF8'),"
            " NULLIF(current_setting('mlstack.empty'), '')",
            **{"mlstack.probe": hostile, "mlstack.empty": None})
        assert row == [(7).to_bytes(8, "big"), None, hostile.encode(), None]
        assert tx.fetch_value("SELECT count(*) FROM tenants") is not None  # still there
