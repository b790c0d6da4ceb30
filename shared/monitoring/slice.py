"""The monitoring loop as one slice: its kind (the detector state), jobs, CLI commands and routes.

It watches the other loops' models without importing them: the composition layer
(shared/slices.py) hands it each watched kind with its prediction table, and each kind's retrain
job for an early retrain on drift."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.context import AppContext, get_context
from shared.errors import FieldProblem, InvalidInput
from shared.monitoring.kind import ANOMALY
from shared.monitoring.watched import WatchedKind
from shared.platform.cli_args import days, from_options, http_url, iso_datetime, positive_float, positive_int
from shared.platform.jobs import CliGroups, Job, Slice
from shared.platform.training import candidate_report

Retrainer = Callable[[AppContext], dict[str, Any]]


def monitoring_slice(watched: Mapping[str, WatchedKind], retrainers: Mapping[str, Retrainer]) -> Slice:
    tables = {name: w.table for name, w in watched.items()}

    def services(context: AppContext) -> Any:
        from shared.monitoring.services import monitoring_services

        return monitoring_services(context, tables)

    def collect_job(context: AppContext) -> dict[str, Any]:
        from shared.monitoring.collection import collect

        return collect(services(context))

    def scan_job(context: AppContext) -> dict[str, Any]:
        from shared.monitoring.scan import scan

        return scan(services(context))

    def compact_job(context: AppContext) -> dict[str, Any]:
        from shared.monitoring.scan import compact

        return compact(services(context))

    def drift_job(context: AppContext, days: int = 30, retrain: bool | None = None) -> dict[str, Any]:
        from shared.monitoring.drift import check_drift

        early = context.settings.drift_retrain if retrain is None else retrain
        hook = (lambda kind: retrainers[kind](context) if kind in retrainers else {"skipped": "no retrain job"})
        return check_drift(services(context), watched, days=days, retrain=hook if early else None)

    def precedents_job(context: AppContext) -> dict[str, Any]:
        from shared.monitoring.precedents import refresh_precedents

        return refresh_precedents(services(context))

    def retrain_job(context: AppContext) -> dict[str, Any]:
        from shared.monitoring.retraining import retrain_state

        return retrain_state(services(context))

    def add_cli_commands(groups: CliGroups) -> None:
        def cmd_drift(args: argparse.Namespace) -> Any:
            return drift_job(get_context(), days=args.days, retrain=args.retrain or None)

        def cmd_train_state(args: argparse.Namespace) -> Any:
            from shared.monitoring.retraining import train_state

            context = get_context()
            end = args.end or datetime.now(UTC)
            result = train_state(services(context), end=end, days_back=args.days_back, actor=args.actor)
            return candidate_report(result, context.registry, activate=args.activate, actor=args.actor,
                                    reason="mlstack train anomaly --activate",
                                    series_profiles=result.manifest["series_profiles"])

        def cmd_backtest(args: argparse.Namespace) -> Any:
            from shared.monitoring.backtest import backtest

            # A path written with a trailing slash names a folder, even one that does not exist yet.
            output = Path(args.output)
            if args.output.endswith(("/", os.sep)) and not args.input.is_dir():
                output.mkdir(parents=True, exist_ok=True)
            return backtest(args.input, output, args.detector)

        def cmd_silence(args: argparse.Namespace) -> Any:
            from shared.monitoring.incidents import SilenceBody, add_silence

            body = from_options(SilenceBody, source=args.source, metric=args.metric, minutes=args.minutes,
                                reason=args.reason)
            return add_silence(services(get_context()), body, args.actor)

        def cmd_silences(args: argparse.Namespace) -> Any:
            from shared.monitoring.incidents import list_silences

            return list_silences(services(get_context()))

        def cmd_incidents(args: argparse.Namespace) -> Any:
            from shared.monitoring.incidents import IncidentsQuery, list_incidents

            query = from_options(IncidentsQuery, status=args.status, limit=args.limit)  # checked before connecting
            return list_incidents(services(get_context()), query, None)

        def cmd_agent(args: argparse.Namespace) -> Any:
            from shared.logs import configure_logging
            from shared.monitoring.agent import Agent, NotDelivered

            key = args.key or os.environ.get("MLSTACK_AGENT_KEY", "")
            if not key:
                raise SystemExit("mlstack agent needs --key or MLSTACK_AGENT_KEY (an operator or service key)")
            configure_logging()  # a refused batch or an absent service is a line on stderr, not silence
            agent = Agent(args.url, key, args.source)
            agent.run(args.interval, iterations=1 if args.once else None)  # a refused key raises: the end
            if args.once and not agent.delivered:
                raise NotDelivered(f"nothing delivered: {agent.last_problem}")
            return {"source": agent.source, "delivered": agent.delivered, "buffered": len(agent.buffer)}

        def cmd_schedule(args: argparse.Namespace) -> Any:
            import threading

            from shared.logs import configure_logging
            from shared.monitoring.local_schedule import Scheduled, rate_seconds, run_schedule, stop_on_signals

            configure_logging()  # each run's schedule.ran / schedule.failed line on stderr
            context = get_context()
            known = {name: (expression, run) for name, expression, _, run in schedules}
            names = args.job or [name for name, (expression, _) in known.items() if rate_seconds(expression)]
            entries = []
            for name in names:
                if name not in known or rate_seconds(known[name][0]) is None:
                    raise InvalidInput(f"{name} is not a monitoring job with a rate() schedule",
                                       [FieldProblem("--job", f"one of {', '.join(sorted(n for n in known if rate_seconds(known[n][0])))}")])
                run = known[name][1]
                entries.append(Scheduled(name, float(rate_seconds(known[name][0]) or 60.0),
                                         lambda run=run: run(context)))  # type: ignore[misc]
            stop = threading.Event()
            stop_on_signals(stop)
            return {"runs": run_schedule(entries, stop, rounds=args.rounds)}

        from shared.monitoring.backtest import DETECTOR_CHOICES

        train = groups.group("train", "train models")
        p = groups.add(train, "drift", cmd_drift, "drift of every model's serving inputs against its training data")
        p.add_argument("--days", type=days, default=30, help="serving inputs of the last N days")
        p.add_argument("--retrain", action="store_true", help="retrain a drifted kind right away")
        p = groups.add(train, "anomaly", cmd_train_state, "train the detector state (Isolation Forest, profiles)")
        p.add_argument("--days-back", type=days, default=None)
        p.add_argument("--end", type=iso_datetime, help="end of the window, ISO 8601 (default: now)")
        p.add_argument("--activate", action="store_true")
        p.add_argument("--actor", default=f"cli:{os.environ.get('USER', 'ops')}")

        anomaly = groups.group("anomaly", "anomaly detection")
        p = groups.add(anomaly, "backtest", cmd_backtest,
                       "score CSV files (timestamp,value) as the scan would; adds anomaly_score")
        p.add_argument("--input", type=Path, required=True, help="a CSV file or a folder (recursive)")
        p.add_argument("--output", required=True,
                       help="a CSV file or a folder (mirrors the input; a path ending in / is a folder)")
        p.add_argument("--detector", default="ensemble", choices=DETECTOR_CHOICES)

        alerts = groups.group("alerts", "alerts, incidents and silences")
        p = groups.add(alerts, "silence", cmd_silence, "silence alerts of a source (and metric) for a while")
        p.add_argument("--source", required=True, help="SQL LIKE pattern, e.g. host-7 or db%%")
        p.add_argument("--metric", default="%")
        p.add_argument("--minutes", type=int, default=60)
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=f"cli:{os.environ.get('USER', 'ops')}")
        groups.add(alerts, "silences", cmd_silences, "silences not yet ended")
        p = groups.add(alerts, "incidents", cmd_incidents, "incidents, newest first, with their alerts")
        p.add_argument("--status", choices=("open", "acknowledged", "resolved"))
        p.add_argument("--limit", type=int, default=20)

        p = groups.add(groups.root_parser(), "agent", cmd_agent, "push this host's psutil readings every 60 s")
        p.add_argument("--url", type=http_url, default="http://127.0.0.1:8000")
        p.add_argument("--key", help="operator or service key (default: MLSTACK_AGENT_KEY)")
        p.add_argument("--source", help="the host's name in the series (default: its hostname)")
        p.add_argument("--interval", type=positive_float, default=60.0)
        p.add_argument("--once", action="store_true", help="one reading, one push, then exit")

        p = groups.add(groups.root_parser(), "schedule", cmd_schedule,
                       "run the monitoring jobs on their deployed rates until SIGTERM (the local run starts it)")
        p.add_argument("--job", action="append", help="only these jobs, in this order (default: collect-metrics,"
                       " scan-metrics, compact-metrics, check-drift, refresh-precedents)")
        p.add_argument("--rounds", type=positive_int, help="stop after this many rounds that ran a job")

    schedules = (  # (name, EventBridge schedule, what it does, run)
        ("collect-metrics", "rate(1 minute)", "Database, queue, request and prediction metrics as points", collect_job),
        ("scan-metrics", "rate(1 minute)", "Score new points; alert on anomalies and missing data; incidents", scan_job),
        ("compact-metrics", "rate(1 day)", "Hourly rollups of points older than the raw window; retention",
         compact_job),
        ("check-drift", "rate(1 day)", "Serving inputs of 30 days against each model's training data", drift_job),
        ("refresh-precedents", "rate(1 day)", "Each series' precedent memory from its last 30 days, for the scan",
         precedents_job),
        ("retrain-anomaly", "cron(0 3 ? * SUN *)", "Train the detector state on 30 days; promote if better",
         retrain_job),
    )
    # A state activated or rolled back by hand gets memories against its own profiles at once, as a
    # promotion does (shared/monitoring/retraining.py), not at the next daily refresh.
    return Slice("monitoring", (ANOMALY,), tuple(Job(*spec) for spec in schedules), add_cli_commands,
                 "functions.api_monitoring", after_activation={ANOMALY.name: precedents_job})
