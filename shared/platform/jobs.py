"""Scheduled jobs and the slices that bring them: what `app.py`, the schedules, the IaC checks and
the CLI are all built from (the one list is `shared.slices.SLICES`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.platform.kinds import ModelKind

if TYPE_CHECKING:
    from shared.context import AppContext

CliRegistrar = Callable[["CliGroups"], None]
# Retrain one scope of a kind: (context, tenant_id or None for the global model) -> the decision.
ScopeRetrainer = Callable[["AppContext", "str | None"], dict[str, Any]]
# What must follow when a version of a kind becomes active outside its retrain job (by hand).
ActivationFollowUp = Callable[["AppContext"], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    name: str
    # EventBridge expression, e.g. "rate(6 hours)" or "cron(0 3 ? * MON *)".
    schedule: str
    description: str
    run: Callable[[AppContext], dict[str, Any]]

    @property
    def handler_name(self) -> str:
        """The Chalice function's name (and, in CamelCase, its CloudFormation logical id)."""
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Slice:
    """One loop: its model kinds, scheduled jobs, CLI commands and (by module name, since the
    entrypoints live outside shared/) the Chalice blueprint of its routes."""

    name: str
    kinds: tuple[ModelKind, ...] = ()
    jobs: tuple[Job, ...] = ()
    cli: CliRegistrar | None = None
    routes_module: str | None = None
    # Per kind name: how one scope is retrained (what the training-jobs queue's worker calls).
    retrainers: dict[str, ScopeRetrainer] = field(default_factory=dict)
    # Per kind name: run after `mlstack models activate` or `rollback` made a version of it active.
    after_activation: dict[str, ActivationFollowUp] = field(default_factory=dict)


def add_candidate_flags(parser: argparse.ArgumentParser) -> None:
    """--activate and --actor, as every `mlstack train KIND` takes them."""
    parser.add_argument("--activate", action="store_true", help="activate the candidate right away")
    parser.add_argument("--actor", default=f"cli:{os.environ.get('USER', 'ops')}")


def add_batch_files(parser: argparse.ArgumentParser) -> None:
    """--tenant, --input and --output, as every batch scoring command takes them."""
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)


class CliGroups:
    """The CLI's command groups (`ingest`, `train`, `score`, …), created on first use, so every
    slice can add its commands to a shared group."""

    def __init__(self, root: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
        self._root = root
        self._groups: dict[str, Any] = {}
        self.add = add

    def root_parser(self) -> Any:
        """The top level, for a command outside any group (`mlstack agent`)."""
        return self._root

    def group(self, name: str, help_text: str) -> Any:
        if name not in self._groups:
            self._groups[name] = self._root.add_parser(name, help=help_text).add_subparsers(
                dest="action", required=True
            )
        return self._groups[name]
