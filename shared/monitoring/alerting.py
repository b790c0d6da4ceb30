"""Alerts into incidents. Deduplication first: an alert whose series and detector (its
fingerprint) already has an alert in an unresolved incident counts another occurrence there.
Otherwise it joins the incident of its group (the same service or host, and tenant) whose last
alert is within the window (GROUP_WINDOW unless configured), or opens one. An alert a silence
matches is kept, marked silenced, and never published. New alerts are published per incident, once.

Groups: the service's own sources (database, api, predictions, queue:<name>) are the service
`service:mlstack`; a model's drift is `model:<kind>` (per tenant, as incidents are); any other
source is a host, and `host/part` (a process or disk of a host) belongs to `host`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.monitoring.alerts_repository import AlertIn, AlertsRepository
from shared.monitoring.notify import Notifier

GROUP_WINDOW = timedelta(minutes=30)
SERVICE_SOURCES = ("database", "api", "predictions")
SERVICE_GROUP = "service:mlstack"
# An incident with no alert for this long is resolved (a new alert then opens a new one).
RESOLVE_AFTER = timedelta(hours=2)


def incident_group(source: str) -> str:
    """The service or host an alert's source belongs to (module docstring)."""
    if source in SERVICE_SOURCES or source.startswith("queue:"):
        return SERVICE_GROUP
    if source.startswith("model:"):
        return source
    return "host:" + source.split("/", 1)[0]


def _incident_for(session: Any, alerts_repo: AlertsRepository, alert: AlertIn, window: timedelta) -> str:
    held = alerts_repo.incident_holding(session, alert.fingerprint, alert.tenant_id)
    if held is not None:
        return held
    group = incident_group(alert.source)
    incident = alerts_repo.open_incident(session, group, alert.at - window, alert.tenant_id)
    if incident is not None:
        return str(incident["incident_id"])
    return alerts_repo.create_incident(session, alert.source, alert.tenant_id, alert.at, group)


def raise_alerts(session: Any, alerts_repo: AlertsRepository, alerts: Sequence[AlertIn], now: datetime,
                 window: timedelta = GROUP_WINDOW) -> dict[str, int]:
    silences = alerts_repo.silences(session, now)
    counts = {"alerts": 0, "new": 0, "deduplicated": 0, "silenced": 0}
    alerts_repo.resolve_quiet(session, now - RESOLVE_AFTER, now)
    for alert in sorted(alerts, key=lambda a: a.at):
        incident_id = _incident_for(session, alerts_repo, alert, window)
        silenced = any(s.matches(alert.source, alert.metric, alert.at) for s in silences)
        _, new = alerts_repo.record_alert(session, incident_id, alert, silenced)
        counts["alerts"] += 1
        counts["new" if new else "deduplicated"] += 1
        counts["silenced"] += int(silenced and new)
    return counts


def publish_new(session: Any, alerts_repo: AlertsRepository, notifier: Notifier) -> int:
    """One message per incident with its alerts not yet published."""
    pending = alerts_repo.unpublished(session)
    by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in pending:
        by_incident[alert["incident_id"]].append(alert)
    for incident_id, alerts in by_incident.items():
        sources = sorted({a["source"] for a in alerts})
        subject = f"mlstack alert: {', '.join(sources)}: " + ", ".join(sorted({a["metric"] for a in alerts}))
        notifier.publish(subject, {
            "incident_id": incident_id,
            "alerts": [{k: alert[k] for k in ("alert_id", "alert_type", "source", "metric", "score", "reasons",
                                              "value", "first_at")} for alert in alerts],
        })
    alerts_repo.mark_published(session, [a["alert_id"] for a in pending])
    return len(by_incident)
