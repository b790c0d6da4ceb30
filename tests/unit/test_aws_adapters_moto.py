"""Fast tests of the AWS adapters against moto (in-process fakes of S3 and Secrets Manager);
tests/integration repeats the round trips against LocalStack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from shared.adapters.aws import aws_client, read_secret_json, read_secret_string
from shared.adapters.objectstore import S3ObjectStore, tenant_key
from shared.errors import ConfigurationError, DependencyUnavailable, NotFound


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_s3_store_round_trip_lists_by_prefix_and_missing_is_not_found(aws: Any) -> None:
    client = aws_client("s3")
    client.create_bucket(Bucket="models")
    store = S3ObjectStore("models", "stage", client)
    key = tenant_key("0b7c2e4e-3f1e-4f0e-9d56-0c1a2b3c4d5e", "models", "toy", "a.json")
    store.put(key, b'{"w": 1}')
    assert store.get(key) == b'{"w": 1}'
    assert store.list(key.rsplit("/", 1)[0]) == [key]
    store.delete(key)
    with pytest.raises(NotFound):
        store.get(key)


def test_a_missing_bucket_is_a_dependency_error_not_a_crash(aws: Any) -> None:
    with pytest.raises(DependencyUnavailable):
        S3ObjectStore("no-such-bucket", "", aws_client("s3")).put("k", b"x")


def test_secrets_are_read_and_malformed_ones_named(aws: Any) -> None:
    client = aws_client("secretsmanager")
    client.create_secret(Name="db", SecretString=json.dumps({"username": "u", "password": "p@ss"}))
    client.create_secret(Name="list", SecretString="[1, 2]")
    assert read_secret_json(client, "db")["password"] == "p@ss"
    assert read_secret_string(client, "list") == "[1, 2]"
    with pytest.raises(ConfigurationError, match="'list' is not a JSON object"):
        read_secret_json(client, "list")
    with pytest.raises(DependencyUnavailable, match="'absent'"):
        read_secret_string(client, "absent")
