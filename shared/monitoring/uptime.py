"""The seed's metrics-uptime bar as an alert: a series collected every minute that reported in under
99 % of its minutes over the scan's day. A series that stops altogether is a `missing_data` alert;
this catches the one that keeps dropping a minute here and there (a flapping agent, a collector that
overruns its minute), which never stays silent the 5 minutes that alert waits for."""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

from shared.monitoring.host import HOST_METRICS

UPTIME_BAR = 0.99
# Fewer minutes than this since a series' first point in the day say too little (4 missed minutes
# of a 6-hour-old series already fail the bar; fewer hours would make one missed minute an alert).
MIN_SPAN_MINUTES = 360
# The newest minutes are not judged: their points may still be on their way (the agent pushes a
# batch a minute), and a series silent for them is the missing-data alert's.
LAG_MINUTES = 5
# A series whose typical gap is longer is not collected every minute: its share would mean nothing.
MAX_MEDIAN_GAP_S = 90.0


def collected_every_minute(source: str, metric: str) -> bool:
    """Series that should have a point every minute: an agent's host readings (a tenant's too), and
    the collector's database, prediction-count and queue-depth readings. Not the route timings
    (written only for minutes with requests), the slowest statements (the five change), a queue's
    oldest age (only when CloudWatch has a datapoint), nor other series a tenant pushes."""
    if metric in HOST_METRICS:
        return True
    if source == "database":
        return not metric.startswith("statement ")
    if source == "predictions":
        return True
    return source.startswith("queue:") and metric != "oldest_age_seconds"


# A route timing's metric, as the collector names it: "<METHOD> <route> <measure>".
_ROUTE_TIMING = re.compile(r"[A-Z]+ /\S* (requests|errors|error_rate|p50_ms|p95_ms|p99_ms)$")


def written_only_when_active(source: str, metric: str) -> bool:
    """Series the collector writes only for a minute with something to report: the route timings
    (requests came), the slowest statements (the five change) and a queue's oldest age (CloudWatch
    had a datapoint). Their silence is normal, never a missing-data alert."""
    if source == "api":
        return _ROUTE_TIMING.match(metric) is not None
    if source == "database":
        return metric.startswith("statement ")
    return source.startswith("queue:") and metric == "oldest_age_seconds"


def reported_share(times: NDArray[np.float64], until_s: float) -> float | None:
    """The share of the minutes from the series' first point (in `times`, sorted epoch seconds) up
    to LAG_MINUTES before `until_s` that hold a point; None when it spans fewer than
    MIN_SPAN_MINUTES of them, or is under the bar only because it is not a one-minute series."""
    minutes = np.floor(times / 60.0)
    end = np.floor(until_s / 60.0) - LAG_MINUTES
    judged = int(np.searchsorted(minutes, end, side="left"))
    if judged < 2:
        return None
    span = float(end - minutes[0])
    if span < MIN_SPAN_MINUTES:
        return None
    share = min(1.0, (1 + int(np.count_nonzero(np.diff(minutes[:judged])))) / span)
    # The cadence is looked at only under the bar (a median per series and scan costs 40 ms of
    # every 1,000-series scan): a series with a point in every minute is up, whatever its cadence.
    if share < UPTIME_BAR and float(np.median(np.diff(times[:judged]))) > MAX_MEDIAN_GAP_S:
        return None
    return share
