"""Alerts into incidents: alerts of one source within GROUP_WINDOW of the incident's last alert
join it (a new source, or a quiet one, opens a new incident); the same (type, source, metric) in
an incident is one alert that counts occurrences (deduplication); an alert a silence matches is
kept, marked silenced, and never published. New alerts are published per incident, once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.monitoring.alerts_repository import AlertIn, AlertsRepository
from shared.monitoring.notify import Notifier

GROUP_WINDOW = timedelta(minutes=30)
# An incident with no alert for this long is resolved (a new alert then opens a new one).
RESOLVE_AFTER = timedelta(hours=2)


def raise_alerts(session: Any, alerts_repo: AlertsRepository, alerts: Sequence[AlertIn], now: datetime) -> dict[str, int]:
    silences = alerts_repo.silences(session, now)
    counts = {"alerts": 0, "new": 0, "deduplicated": 0, "silenced": 0}
    alerts_repo.resolve_quiet(session, now - RESOLVE_AFTER, now)
    for alert in sorted(alerts, key=lambda a: a.at):
        incident = alerts_repo.open_incident(session, alert.source, alert.at - GROUP_WINDOW)
        incident_id = (incident["incident_id"] if incident is not None
                       else alerts_repo.create_incident(session, alert.source, alert.tenant_id, alert.at))
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
