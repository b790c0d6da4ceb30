#!/usr/bin/env python3
"""Build the Lambda deployment package with `chalice package`.

Chalice zips only app.py, chalicelib/, vendor/ and the requirements. So the package is built
from a staging copy in which functions/ and shared/ sit in vendor/ (whose contents land at the
zip's root), which keeps the project's layout and still gets both packages into Lambda.

    python scripts/package.py --stage dev --out build/package [--merge-template infra/template.yaml]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
PACKAGES = ("functions", "shared")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def stage_project(stage_dir: Path) -> Path:
    """A copy of the project as Chalice expects it. Reuses stage_dir's .chalice/deployments cache."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("app.py", "requirements.txt", "vendor"):
        target = stage_dir / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    shutil.copy2(ROOT / "app.py", stage_dir / "app.py")
    shutil.copy2(ROOT / "requirements.txt", stage_dir / "requirements.txt")
    (stage_dir / ".chalice").mkdir(exist_ok=True)
    for settings in (ROOT / ".chalice").glob("*.json"):  # config.json and the policy files it names
        shutil.copy2(settings, stage_dir / ".chalice" / settings.name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, stage_dir / "vendor" / package, ignore=IGNORED)
    return stage_dir


def package(stage: str, out: Path, merge_template: Path | None, stage_dir: Path, package_format: str) -> Path:
    staged = stage_project(stage_dir)
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    command = [str(Path(sys.executable).parent / "chalice"), "package", "--stage", stage,
               "--pkg-format", package_format]
    if merge_template is not None:
        command += ["--merge-template", str(merge_template.resolve())]
    # Packaging talks to no AWS account, but Chalice wants a region to name ARNs in the template.
    env = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ}
    subprocess.run([*command, str(out)], cwd=staged, check=True, env=env)
    precompile_deployment_zip(out / "deployment.zip")
    return out


def precompile_deployment_zip(zip_path: Path) -> None:
    """Add unchecked-hash bytecode to the function zip. Chalice ships sources only, and Lambda's
    /var/task is read-only, so without it every cold start compiles every module it imports."""
    from build_layers import compile_bytecode, write_zip

    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp) / "task"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(unpacked)
        compile_bytecode(unpacked, ddir="/var/task")
        write_zip(unpacked, zip_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    parser.add_argument("--merge-template", type=Path)
    parser.add_argument("--pkg-format", default="cloudformation", choices=["cloudformation", "terraform"])
    parser.add_argument("--stage-dir", type=Path, default=ROOT / "build" / "chalice-stage")
    args = parser.parse_args()
    out = package(args.stage, args.out, args.merge_template, args.stage_dir, args.pkg_format)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
