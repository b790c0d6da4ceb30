"""The layout's rules, checked from the source: who may import whom, no import cycles, SQL only in
adapters and repositories, and every scheduled job deployed with a function and a layer."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.slices import SLICES, all_jobs

ROOT = Path(__file__).resolve().parents[2]
KERNEL = {"shared", "shared.errors", "shared.logs", "shared.settings"}
COMPOSITION = {"shared.context", "shared.slices", "shared.cli", "shared.demo"}
SLICE_PACKAGES = {"shared.conflict", "shared.fraud", "shared.ocr", "shared.monitoring"}  # every loop's folder; each new slice adds its own


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def shared_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "shared").rglob("*.py"))}


def runtime_imports(path: Path) -> Iterator[str]:
    """Every module imported when the code runs, lazy imports included; imports only for type
    checking are left out (they never run)."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def layer_of(module: str) -> str:
    if module in KERNEL:
        return "kernel"
    if module in COMPOSITION:
        return "composition"
    for prefix in ("shared.adapters", "shared.platform"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    for package in SLICE_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    raise AssertionError(f"{module} belongs to no layer: add it to one (docs/ARCHITECTURE.md)")


ALLOWED = {
    "kernel": {"kernel"},
    "adapters": {"kernel", "adapters"},
    "platform": {"kernel", "adapters", "platform"},
    "composition": {"kernel", "adapters", "platform", "composition", *SLICE_PACKAGES},
}


def test_each_layer_imports_only_what_it_may() -> None:
    wrong = []
    for module, path in shared_modules().items():
        layer = layer_of(module)
        allowed = ALLOWED.get(layer, {"kernel", "adapters", "platform", "shared.context", layer})
        for imported in runtime_imports(path):
            if imported.split(".")[0] in ("functions", "chalice", "app"):
                wrong.append(f"{module} -> {imported} (shared never imports entrypoints)")
            elif imported.startswith("shared"):
                target = layer_of(imported) if imported != "shared.context" else "shared.context"
                if target not in allowed and layer_of(imported) not in allowed:
                    wrong.append(f"{module} ({layer}) -> {imported} ({target})")
    assert wrong == []


def test_no_import_cycles_in_shared() -> None:
    modules = shared_modules()
    graph = {m: {i for i in runtime_imports(p) if i in modules and i != m} for m, p in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT INTO|UPDATE\s+\w+\s+SET|DELETE FROM|CREATE TABLE|TRUNCATE\s+\w+)\b", re.S)


def test_sql_lives_only_in_adapters_and_repositories() -> None:
    holders = [
        module for module, path in shared_modules().items()
        if SQL.search(path.read_text()) and not module.startswith("shared.adapters")
        and not module.endswith("_repository") and not module.endswith("prediction_log")
    ]
    assert holders == []


def test_the_planted_violations_are_caught(tmp_path: Path) -> None:
    """The checks above would fail: a cycle and a platform module importing a slice are found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from shared.conflict.kind import CONFLICT\nif TYPE_CHECKING:\n    import shared.cli\n")
    assert list(runtime_imports(bad)) == ["shared.conflict.kind"]
    assert layer_of("shared.conflict.kind") not in ALLOWED["platform"]
    assert SQL.search('x = "SELECT a FROM b"') and not SQL.search("select the best model from the list")


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_job_has_a_function_in_the_chalice_config(stage: str) -> None:
    functions = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][stage]["lambda_functions"]
    missing = [job.handler_name for job in all_jobs().values() if job.handler_name not in functions]
    assert missing == []


def test_every_job_has_a_layer_in_the_template() -> None:
    template = (ROOT / "infra" / "template.yaml").read_text()
    missing = [job.name for job in all_jobs().values() if not re.search(rf"^  {_camel(job.handler_name)}:", template, re.M)]
    assert missing == []


def test_every_slice_route_module_exports_a_blueprint() -> None:
    from importlib import import_module

    from chalice import Blueprint

    for loop in SLICES:
        if loop.routes_module:
            assert isinstance(import_module(loop.routes_module).blueprint, Blueprint), loop.name
