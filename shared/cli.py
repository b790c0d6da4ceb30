"""`mlstack`: the ops command line. Every command has --help; settings come from the environment
(or --env-file, e.g. the .mlstack/local.env that the run command writes)."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from shared.errors import Conflict, MlstackError, problem_location, problem_reason
from shared.platform.cli_args import open_share

Handler = Callable[[argparse.Namespace], Any]


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _context() -> Any:
    from shared.context import get_context

    return get_context()


def load_env_file(path: Path) -> None:
    """KEY=VALUE lines; variables already in the environment win."""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key.strip().removeprefix("export ").strip(), value.strip().strip("'\""))


# -- db ---------------------------------------------------------------------------------------


def cmd_db_migrate(args: argparse.Namespace) -> Any:
    from shared.adapters.migrate import migrate

    applied = migrate(_context().database)
    return {"applied": applied}


# -- tenants and keys -------------------------------------------------------------------------


def cmd_tenants_create(args: argparse.Namespace) -> Any:
    try:
        tenant = _context().tenants.create_tenant(args.slug, args.name or args.slug)
    except Conflict:  # the slug's unique index, whose text names the database's key
        raise Conflict(f"tenant {args.slug!r} already exists (see `mlstack tenants list`)") from None
    return tenant.__dict__


def cmd_tenants_list(args: argparse.Namespace) -> Any:
    return [t.__dict__ for t in _context().tenants.list_tenants()]


def cmd_keys_create(args: argparse.Namespace) -> Any:
    directory = _context().tenants
    tenant = directory.find_tenant(args.tenant)
    issued = directory.create_key(tenant.tenant_id, args.role, args.label)
    print("The key is shown once; store it now.", file=sys.stderr)
    return issued.__dict__


def cmd_keys_revoke(args: argparse.Namespace) -> Any:
    _context().tenants.revoke_key(args.key_id)
    return {"revoked": args.key_id}


def cmd_keys_list(args: argparse.Namespace) -> Any:
    directory = _context().tenants
    return directory.list_keys(directory.find_tenant(args.tenant).tenant_id)


# -- models -----------------------------------------------------------------------------------


def _tenant_id(slug_or_id: str | None) -> str | None:
    return _context().tenants.find_tenant(slug_or_id).tenant_id if slug_or_id else None


def cmd_models_list(args: argparse.Namespace) -> Any:
    from shared.platform.roles import serving_role

    versions = _context().registry.list_versions(
        kind=args.kind, tenant_id=_tenant_id(args.tenant), include_global=not args.tenant
    )
    return [
        {"version_id": v.version_id, "label": v.label, "scope": "global" if v.tenant_id is None else "tenant",
         "status": v.status, "role": serving_role(v), "challenger_share": v.challenger_share, "shadow": v.shadow,
         "metrics": v.manifest.get("metrics"), "created_at": v.created_at}
        for v in versions
    ]


def cmd_models_show(args: argparse.Namespace) -> Any:
    registry = _context().registry
    version = registry.get(args.version_id)
    return {**version.public_view(), "audit": registry.audit_trail(version.version_id)}


def _activated(version: Any) -> dict[str, Any]:
    """The version's view, with what its kind ran after it became active (if anything)."""
    from shared.slices import after_activation

    view = dict(version.public_view())
    follow_up = after_activation(_context(), version.kind)
    if follow_up is not None:
        view["after_activation"] = follow_up
    return view


def cmd_models_activate(args: argparse.Namespace) -> Any:
    return _activated(_context().registry.activate(args.version_id, actor=args.actor, reason=args.reason))


def cmd_models_rollback(args: argparse.Namespace) -> Any:
    registry = _context().registry
    return _activated(registry.rollback(args.kind, _tenant_id(args.tenant), actor=args.actor, reason=args.reason))


def cmd_models_challenger(args: argparse.Namespace) -> Any:
    share = None if args.stop else args.share
    context = _context()
    view = dict(context.registry.set_challenger(args.version_id, share, actor=args.actor).public_view())
    # Serving processes re-read the registry on their own clock, not at once.
    seconds = context.settings.model_refresh_seconds
    view["takes_effect"] = (f"within {seconds:g} s, as serving processes re-read the registry" if seconds > 0
                            else "at each serving process's next request") + " (MLSTACK_MODEL_REFRESH_SECONDS)"
    return view


def cmd_models_shadow(args: argparse.Namespace) -> Any:
    return _context().registry.set_shadow(args.version_id, not args.stop, actor=args.actor).public_view()


# -- jobs -------------------------------------------------------------------------------------


def cmd_run_job(args: argparse.Namespace) -> Any:
    from shared.slices import job_named

    return job_named(args.name).run(_context())


def cmd_jobs_list(args: argparse.Namespace) -> Any:
    from shared.slices import all_jobs

    return [{"name": j.name, "schedule": j.schedule, "description": j.description} for j in all_jobs().values()]


# -- parser -----------------------------------------------------------------------------------


def _add(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def build_parser(slices: Sequence[Any] | None = None) -> argparse.ArgumentParser:
    """Every command; `slices`: the CLI's own commands and only these slices' (see `parser_for`)."""
    parser = argparse.ArgumentParser(prog="mlstack", description="Operate an mlstack deployment.")
    parser.add_argument("--env-file", type=Path, help="read MLSTACK_* settings from this file first")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    db = groups.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    _add(db, "migrate", cmd_db_migrate, "apply the SQL migrations that have not run yet")

    tenants = groups.add_parser("tenants", help="tenants").add_subparsers(dest="action", required=True)
    p = _add(tenants, "create", cmd_tenants_create, "create a tenant")
    p.add_argument("slug", help="short unique name, e.g. acme")
    p.add_argument("--name", default="", help="display name")
    _add(tenants, "list", cmd_tenants_list, "list tenants")

    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    p = _add(keys, "create", cmd_keys_create, "create an API key (shown once)")
    p.add_argument("--tenant", required=True, help="tenant slug or id")
    p.add_argument("--role", required=True, choices=["client", "staff", "service", "operator"])
    p.add_argument("--label", default="", help="what the key is for")
    p = _add(keys, "revoke", cmd_keys_revoke, "revoke an API key by its id")
    p.add_argument("key_id")
    p = _add(keys, "list", cmd_keys_list, "list a tenant's keys (never the secrets)")
    p.add_argument("--tenant", required=True)

    models = groups.add_parser("models", help="model registry").add_subparsers(dest="action", required=True)
    p = _add(models, "list", cmd_models_list, "list model versions")
    p.add_argument("--kind")
    p.add_argument("--tenant", help="only this tenant's versions")
    p = _add(models, "show", cmd_models_show, "one version with its manifest and audit trail")
    p.add_argument("version_id")
    p = _add(models, "activate", cmd_models_activate, "make a version the active one of its kind and scope")
    p.add_argument("version_id")
    p = _add(models, "rollback", cmd_models_rollback, "re-activate the version the active one replaced")
    p.add_argument("kind")
    p.add_argument("--tenant", help="tenant scope (default: global)")
    p = _add(models, "challenger", cmd_models_challenger, "let a candidate serve a share of traffic")
    p.add_argument("version_id")
    p.add_argument("--share", type=open_share, default=0.1, help="strictly between 0 and 1 (default 0.1)")
    p.add_argument("--stop", action="store_true", help="stop serving it as challenger")
    p = _add(models, "shadow", cmd_models_shadow, "score a candidate on every request beside the champion, never answering")
    p.add_argument("version_id")
    p.add_argument("--stop", action="store_true", help="stop scoring it in shadow")
    for action_parser in (models.choices["activate"], models.choices["rollback"], models.choices["challenger"],
                          models.choices["shadow"]):
        action_parser.add_argument("--actor", default=f"cli:{os.environ.get('USER', 'ops')}")
        action_parser.add_argument("--reason", default="")

    from shared.platform.jobs import CliGroups

    if slices is None:
        from shared.slices import SLICES

        slices = SLICES
    slice_groups = CliGroups(groups, _add)
    for loop in slices:
        if loop.cli is not None:
            loop.cli(slice_groups)

    p = _add(groups, "run-job", cmd_run_job, "run a scheduled job now")
    p.add_argument("name", help="see `mlstack jobs`")
    _add(groups, "jobs", cmd_jobs_list, "list scheduled jobs")

    return parser


# The slice module that adds each of these commands, for a parser of one slice (`parser_for`).
# These three slices' modules import no other slice; tests check the list against the slices.
ONE_SLICE_COMMANDS: dict[tuple[str, str], str] = {
    **dict.fromkeys([("ingest", "sync-events"), ("train", "conflict"), ("score", "conflict")], "shared.conflict.slice"),
    **dict.fromkeys([("ingest", "sites"), ("ingest", "holidays"), ("ingest", "attendance"), ("ingest", "fraud-labels"),
                     ("train", "fraud"), ("score", "fraud")], "shared.fraud.slice"),
    **dict.fromkeys([("ingest", "ocr-readings"), ("ingest", "corrections"), ("ocr", "select-batch"), ("ocr", "triage"),
                     ("ocr", "metrics"), ("ocr", "settings"), ("ocr", "plate-counts"), ("train", "ocr")],
                    "shared.ocr.slice"),
}


def _named_command(argv: Sequence[str]) -> tuple[str, str] | None:
    """The command's group and action when the line starts with them (after --env-file, spelled
    out): anything else is for the whole parser to read."""
    if argv[:1] == ["--env-file"]:
        argv = argv[2:]
    elif argv and argv[0].startswith("--env-file="):
        argv = argv[1:]
    return (argv[0], argv[1]) if len(argv) >= 2 else None


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for this command line: for a command of ONE_SLICE_COMMANDS named in full, the
    CLI's own commands and that slice's only (the other slices' modules cost 40 ms of every
    `mlstack score conflict`); else every command (`build_parser`). A command's usage, help and
    errors come from its own subparser, the same in both."""
    module = ONE_SLICE_COMMANDS.get(_named_command(argv) or ("", ""))
    if module is None:
        return build_parser()
    import importlib

    from shared.platform.jobs import Slice

    slices = [value for value in vars(importlib.import_module(module)).values() if isinstance(value, Slice)]
    return build_parser(slices)


# Commands measured lean (docs/BENCHMARKS.md, score7): their numpy work never calls BLAS (batch
# scoring's model product is np.einsum), so OpenBLAS's worker threads, started when numpy loads, would
# only spin (about 60 ms of CPU of each `mlstack score conflict`; training keeps its threads); and
# their handlers close every file and commit every transaction before returning, so the process may
# end without the interpreter's teardown (`_end`).
LEAN_COMMANDS = frozenset({("score", "conflict")})


def _without_blas_threads(command: tuple[str, str] | None) -> None:
    """One BLAS thread for a lean command, unless numpy is loaded already (the setting is read only
    then) or the environment chose a number."""
    if command in LEAN_COMMANDS and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _parsed(argv: Sequence[str]) -> argparse.Namespace:
    """The command line read (building its parser imports the command's slice), settings from
    --env-file loaded."""
    parser = parser_for(argv)
    args = parser.parse_args(argv)
    if args.env_file:
        try:
            load_env_file(args.env_file)
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--env-file {args.env_file}: {getattr(exc, 'strerror', None) or exc}")
    return args


def _validation_problems(exc: Exception) -> list[str] | None:
    """A pydantic ValidationError's problems, one `field: reason` each; None for any other error.
    (pydantic is looked up, not imported: a command that never loaded it cannot raise its errors.)"""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(exc, pydantic.ValidationError):
        return None
    return [f"{problem_location(e) or 'input'}: {problem_reason(e)}" for e in exc.errors()]


def _ran(args: argparse.Namespace) -> int:
    try:
        result = args.handler(args)
    except MlstackError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for problem in exc.fields:
            print(f"  {problem.field}: {problem.reason}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command was given: missing, a folder, not writable, ...
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the user's own stop, not a failure to show a traceback for
        return 130
    except UnicodeDecodeError as exc:  # a file in another encoding (Latin-1, UTF-16, ...), wherever it was read
        print(f"error: an input file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8",
              file=sys.stderr)
        return 2
    except ValueError as exc:
        problems = _validation_problems(exc)
        if problems is None:
            raise
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    if result is not None:
        _print(result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _ran(_parsed(sys.argv[1:] if argv is None else argv))


def run() -> None:
    """The `mlstack` command: what main does (the command line read, then the command run), then
    the end of the process."""
    argv = sys.argv[1:]
    command = _named_command(argv)
    _without_blas_threads(command)  # here, not in main: it would stay in a caller's environment
    # Reading the command line imports the command's slice (numpy, pg8000, ...): objects
    # that live until the process ends, whose creation set off 84 collector passes that freed 276
    # objects in all (`score conflict`: about 40 ms of CPU). Frozen after, later passes skip them.
    gc.disable()
    try:
        args = _parsed(argv)
    finally:
        gc.freeze()
        gc.enable()
    _end(_ran(args), lean=command in LEAN_COMMANDS)


def _end(code: int, lean: bool) -> NoReturn:
    """The end of the process, once the command returned. Interpreter exit tears down every
    module's objects one by one (after batch scoring 30-60 ms of CPU, with the collector frozen).
    A lean command (LEAN_COMMANDS) that left no other thread, daemon or not, skips that: the atexit
    handlers run (logging's flush, temporary folders' cleanup), the standard streams are flushed,
    and the process ends at once. It skips finalizers too (`__del__`, buffered files left open),
    which is why only commands known to close what they open take it. Else the interpreter's own
    exit."""
    if lean and threading.active_count() == 1:
        atexit._run_exitfuncs()  # each handler once: they are unregistered as they run
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # a closed pipe or stream: the interpreter's own exit reports it as ever
        else:
            os._exit(code)
    # With every object out of the collector's reach, interpreter exit skips its full collections
    # over every imported module (after batch scoring 73-114 ms of exit fell to 21-40).
    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":
    run()
