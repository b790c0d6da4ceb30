"""boto3 clients for one endpoint (AWS, or LocalStack with MLSTACK_AWS_ENDPOINT_URL).

boto3 is imported on first use: a function that never touches AWS does not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shared.errors import ConfigurationError, DependencyUnavailable


def aws_client(service: str, *, endpoint_url: str = "", region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)
    return boto3.session.Session().client(
        service, endpoint_url=endpoint_url or None, region_name=region, config=config
    )


def queue_sender(client: Any, queue_url: str) -> Callable[[str], None]:
    """Send one message body to the queue; a queue that cannot be reached is DependencyUnavailable."""

    def send(body: str) -> None:
        try:
            client.send_message(QueueUrl=queue_url, MessageBody=body)
        except Exception as exc:
            raise DependencyUnavailable(f"queue {queue_url} unreachable: {exc}") from exc

    return send


def read_secret_string(client: Any, secret_id: str) -> str:
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as exc:
        raise DependencyUnavailable(f"secret {secret_id!r} unreadable: {exc}") from exc
    value = response.get("SecretString")
    if not value:
        raise ConfigurationError(f"secret {secret_id!r} has no SecretString")
    return value


def read_secret_json(client: Any, secret_id: str) -> dict[str, Any]:
    value = read_secret_string(client, secret_id)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ConfigurationError(f"secret {secret_id!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"secret {secret_id!r} is not a JSON object")
    return parsed
