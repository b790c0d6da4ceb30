"""The packaging files agree with pyproject.toml, the one place versions are written."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_txt_is_generated_from_pyproject() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/sync_requirements.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    unpinned = [s for s in specs if "==" not in s]
    assert unpinned == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test.sh" in readme
    assert "exec scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
