#!/usr/bin/env python3
"""Start and stop a real PostgreSQL server in a folder of ours, with no root and no Docker.

Binaries: $MLSTACK_PG_BIN, else the ones the `pgserver` wheel ships (PostgreSQL 16, installed
into .venv by the setup), else Debian's /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as
root, so when we are root the server runs as the `postgres` user (created if missing).

    python scripts/localpg.py start --data DIR --port 5433 [--fast]   # prints the URL
    python scripts/localpg.py stop --data DIR
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

SERVER_USER = "postgres"


def postgres_bin_dir() -> Path:
    override = os.environ.get("MLSTACK_PG_BIN")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if debian:
        return Path(debian[-1]).parent
    sys.exit("no PostgreSQL binaries: pip install pgserver, or set MLSTACK_PG_BIN")


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return ["runuser", "-u", SERVER_USER, "--"]


def _make_reachable(path: Path) -> None:
    """As root, let the server user traverse every folder above `path` (as pgserver does)."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(data: Path, port: int, fast: bool) -> str:
    bin_dir = postgres_bin_dir()
    data = data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    prefix = _as_server_user()
    _make_reachable(data)
    _make_reachable(bin_dir)
    _chown_to_server_user(data)
    cluster = data / "cluster"
    if not (cluster / "PG_VERSION").exists():
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(cluster), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-locale"],
            check=True, stdout=subprocess.DEVNULL,
        )
    # A Unix socket path must stay under ~100 bytes; deep project folders fall back to /tmp.
    socket_dir = data if len(str(data)) < 80 else Path("/tmp")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {socket_dir}"
    if fast:
        # Throwaway test clusters: durability is not what they test.
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if port_is_open(port):
        sys.exit(f"port {port} is already taken")
    subprocess.run(
        [*prefix, str(bin_dir / "pg_ctl"), "-D", str(cluster), "-l", str(data / "server.log"),
         "-o", options, "-w", "-t", "60", "start"],
        check=True, stdout=subprocess.DEVNULL,
    )
    (data / "port").write_text(str(port))
    _ensure_database(bin_dir, port, "mlstack")
    return f"postgresql://postgres@127.0.0.1:{port}/mlstack"


def _ensure_database(bin_dir: Path, port: int, name: str) -> None:
    psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
            "-tAc"]
    exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                            check=True, capture_output=True, text=True).stdout.strip()
    if not exists:
        subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True, capture_output=True)


def stop(data: Path) -> None:
    cluster = data.resolve() / "cluster"
    if not (cluster / "postmaster.pid").exists():
        return
    subprocess.run(
        [*_as_server_user(), str(postgres_bin_dir() / "pg_ctl"), "-D", str(cluster), "-m", "fast",
         "-w", "stop"],
        check=False, stdout=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="initialise if needed and start; prints the database URL")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--fast", action="store_true", help="fsync off: for throwaway test clusters")
    p = sub.add_parser("stop", help="stop the server of this data folder")
    p.add_argument("--data", type=Path, required=True)
    p = sub.add_parser("remove", help="stop and delete the data folder")
    p.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "start":
        print(start(args.data, args.port or free_port(), args.fast))
    elif args.command == "stop":
        stop(args.data)
    else:
        stop(args.data)
        shutil.rmtree(args.data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
