"""SQS depth and age of the oldest message, for every queue and its dead-letter queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shared.logs import log_event


class QueueProbe(Protocol):
    def readings(self) -> dict[str, dict[str, float]]:
        """queue name -> {depth, in_flight, oldest_age_seconds}."""
        ...


class SqsQueueProbe:
    def __init__(self, client: Any, queue_urls: Sequence[str]) -> None:
        self._client = client
        self._urls = [url for url in queue_urls if url]

    def _urls_with_dead_letters(self) -> list[str]:
        urls = list(self._urls)
        for url in self._urls:
            try:
                policy = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
            except Exception:  # noqa: BLE001 - a probe never stops the collection
                continue
            redrive = policy.get("Attributes", {}).get("RedrivePolicy")
            if redrive:
                import json

                arn = json.loads(redrive).get("deadLetterTargetArn", "")
                name = arn.rsplit(":", 1)[-1]
                try:
                    urls.append(self._client.get_queue_url(QueueName=name)["QueueUrl"])
                except Exception:  # noqa: BLE001
                    log_event("monitoring.dlq_unreachable", queue=name)
        return list(dict.fromkeys(urls))

    def readings(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for url in self._urls_with_dead_letters():
            try:
                attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            except Exception as exc:  # noqa: BLE001
                log_event("monitoring.queue_unreachable", queue=url, error=str(exc)[:200])
                continue
            out[url.rsplit("/", 1)[-1]] = {
                "depth": float(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": float(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                # SQS's API has no age of the oldest message (CloudWatch's ApproximateAgeOfOldest-
                # Message has, and infra/ alarms on the dead-letter queues' depth).
                "delayed": float(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        return out


class StaticQueueProbe:
    def __init__(self, readings: dict[str, dict[str, float]] | None = None) -> None:
        self._readings = readings or {}

    def readings(self) -> dict[str, dict[str, float]]:
        return dict(self._readings)
