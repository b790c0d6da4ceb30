"""Where alerts go: the SNS topic infra/ defines (MLSTACK_ALERTS_TOPIC_ARN), or a list (tests)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from shared.logs import log_event


class Notifier(Protocol):
    def publish(self, subject: str, message: dict[str, Any]) -> None: ...


class SnsNotifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        # SNS subjects: at most 100 printable ASCII characters.
        self._client.publish(TopicArn=self._topic_arn, Subject=subject[:100],
                             Message=json.dumps(message, default=str))


class LogNotifier:
    """No topic configured (a local run): the alert is a log line."""

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        log_event("monitoring.alert", subject=subject, message=message)


class RecordingNotifier:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        self.messages.append((subject, message))
