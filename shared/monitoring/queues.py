"""SQS depth and age of the oldest message, for every queue and its dead-letter queue.

SQS's own API has no age of the oldest message, and peeking (ReceiveMessage) would count as a
receive and push messages toward their dead-letter queue; CloudWatch has it as the queue's
ApproximateAgeOfOldestMessage (published every minute on AWS), so the age comes from there.
Where CloudWatch has no datapoint (LocalStack, a queue idle for long) the reading is left out
rather than guessed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.logs import log_event

# CloudWatch publishes SQS metrics each minute, a few minutes late: the newest within this.
AGE_LOOKBACK = timedelta(minutes=15)


class QueueAges(Protocol):
    def ages(self, queue_names: Sequence[str], now: datetime) -> dict[str, float]:
        """queue name -> age of its oldest message in seconds (queues without a datapoint left out)."""
        ...


class CloudWatchQueueAges:
    """AWS/SQS ApproximateAgeOfOldestMessage (Maximum per minute), newest datapoint per queue, in
    one GetMetricData call per 500 queues."""

    def __init__(self, client: Any, lookback: timedelta = AGE_LOOKBACK) -> None:
        self._client = client
        self._lookback = lookback

    def ages(self, queue_names: Sequence[str], now: datetime) -> dict[str, float]:
        names = list(dict.fromkeys(queue_names))
        out: dict[str, float] = {}
        for start in range(0, len(names), 500):
            part = names[start:start + 500]
            queries = [{"Id": f"q{k}", "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
                           "Dimensions": [{"Name": "QueueName", "Value": name}]},
                "Period": 60, "Stat": "Maximum"}} for k, name in enumerate(part)]
            token: str | None = None
            while True:
                extra = {"NextToken": token} if token else {}
                try:
                    answer = self._client.get_metric_data(
                        MetricDataQueries=queries, StartTime=now - self._lookback, EndTime=now,
                        ScanBy="TimestampDescending", **extra)
                except Exception as exc:  # noqa: BLE001 - a probe never stops the collection
                    log_event("monitoring.queue_age_unavailable", error=str(exc)[:200])
                    return out
                for result in answer.get("MetricDataResults", []):
                    values = result.get("Values") or []
                    name = part[int(result["Id"][1:])]
                    if values and name not in out:  # newest first
                        out[name] = float(values[0])
                token = answer.get("NextToken")
                if not token:
                    break
        return out


class QueueProbe(Protocol):
    def readings(self) -> dict[str, dict[str, float]]:
        """queue name -> {depth, in_flight, oldest_age_seconds}."""
        ...


class SqsQueueProbe:
    def __init__(self, client: Any, queue_urls: Sequence[str], ages: QueueAges | None = None) -> None:
        self._client = client
        self._urls = [url for url in queue_urls if url]
        self._ages = ages

    def _urls_with_dead_letters(self) -> list[str]:
        urls = list(self._urls)
        for url in self._urls:
            try:
                policy = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
            except Exception:  # noqa: BLE001 - a probe never stops the collection
                continue
            redrive = policy.get("Attributes", {}).get("RedrivePolicy")
            if redrive:
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
                "delayed": float(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        if self._ages is not None and out:
            for name, age in self._ages.ages(list(out), datetime.now(UTC)).items():
                out[name]["oldest_age_seconds"] = age
        return out


class StaticQueueProbe:
    def __init__(self, readings: dict[str, dict[str, float]] | None = None) -> None:
        self._readings = readings or {}

    def readings(self) -> dict[str, dict[str, float]]:
        return dict(self._readings)
