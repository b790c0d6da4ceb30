"""scripts/build_layers.py without network: pruning, zip, size cap, ELF checks."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_build_layers():
    spec = importlib.util.spec_from_file_location(
        "build_layers", ROOT / "scripts" / "build_layers.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bl = _load_build_layers()
MIB = 1024 * 1024
ON_LAMBDA_ARCH = sys.platform == "linux" and platform.machine() == "x86_64"


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _dynload_extensions() -> list[Path]:
    """The interpreter's own extension modules (lib-dynload): real ELF files to test with."""
    dynload = Path(sysconfig.get_config_var("DESTSHARED") or "")
    if not dynload.is_dir():
        import _ctypes

        dynload = Path(_ctypes.__file__).parent
    return sorted(p for p in dynload.glob("*.so") if bl.is_shared_object(p))


# ---------------------------------------------------------------- pruning


def test_prune_removes_what_lambda_never_runs_and_keeps_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "python"
    removed = [
        _write(site / "pkg" / "tests" / "test_a.py", b"a" * 100),
        _write(site / "pkg" / "sub" / "test" / "data.bin", b"b" * 50),
        _write(site / "pkg" / "__pycache__" / "mod.cpython-312.pyc", b"c" * 10),
        _write(site / "pkg" / "mod.pyi", b"d" * 7),
        _write(site / "pkg" / "_fast.pyx", b"e"),
        _write(site / "pkg" / "_fast.pxd", b"e"),
        _write(site / "pkg" / "_tmpl.pyx.tp", b"e"),
        _write(site / "pkg" / "include" / "pkg.h", b"f"),
        _write(site / "pkg" / "src" / "impl.cpp", b"g"),
        _write(site / "pkg" / "lib" / "libstatic.a", b"h"),
        _write(site / "bin" / "f2py", b"#!/bin/sh\n"),
    ]
    kept = [
        _write(site / "pkg" / "__init__.py"),
        _write(site / "pkg" / "mod.py"),
        _write(site / "pkg" / "_fast.cpython-312-x86_64-linux-gnu.so"),
        _write(site / "pkg" / "testing" / "helpers.py"),  # a runtime module, not a test folder
        _write(site / "pkg" / "test_utils.py"),  # a file, not a tests folder
        _write(site / "pkg" / "data" / "table.txt"),
        _write(site / "pkg" / "py.typed"),
        _write(site / "pkg-1.0.dist-info" / "METADATA", b"Name: pkg\nVersion: 1.0\n"),
        _write(site / "pkg-1.0.dist-info" / "RECORD"),
        _write(site / "pkg-1.0.dist-info" / "licenses" / "include.h"),  # metadata stays whole
        _write(site / "pkg.libs" / "libvendored-abc123.so.1"),
    ]
    expected_freed = sum(p.stat().st_size for p in removed)

    freed = bl.prune_tree(site)

    assert freed == expected_freed
    assert [p for p in removed if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert not (site / "pkg" / "tests").exists() and not (site / "bin").exists()


def test_only_auditwheel_folders_count_as_vendored(tmp_path: Path) -> None:
    site = tmp_path / "python"
    assert bl.in_vendored_lib_dir(site / "numpy.libs" / "libopenblas.so", site)
    assert bl.in_vendored_lib_dir(site / "scipy.libs" / "sub" / "libgfortran.so.5", site)
    assert not bl.in_vendored_lib_dir(site / "xgboost" / "lib" / "libxgboost.so", site)
    assert not bl.in_vendored_lib_dir(site / "numpy" / "_core" / "_multiarray_umath.so", site)


# ---------------------------------------------------------------- zip


def test_zip_is_reproducible_and_sizes_count_unzipped_bytes(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    _write(layer / "python" / "b.py", b"print('b')\n" * 100)
    _write(layer / "python" / "a" / "__init__.py", b"")
    script = _write(layer / "python" / "a" / "tool.sh", b"#!/bin/sh\n")
    script.chmod(0o755)
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"

    bl.write_zip(layer, first)
    bl.write_zip(layer, second)

    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert names == sorted(names) and all(n.startswith("python/") for n in names)
    assert modes["python/a/tool.sh"] == 0o755 and modes["python/b.py"] == 0o644
    zipped, unzipped, files = bl.zip_sizes(first)
    assert (unzipped, files) == (1100 + 10, 3)
    assert zipped == first.stat().st_size < unzipped


# ---------------------------------------------------------------- size cap


def _layer(name: str, unzipped: int) -> object:
    return bl.LayerReport(name, f"{name}.zip", unzipped // 3, unzipped, 1, {}, {})


def test_function_plus_layer_over_250_mib_fails_and_over_200_warns() -> None:
    function = {
        "path": "f.zip",
        "zipped_bytes": 5 * MIB,
        "unzipped_bytes": 11 * MIB,
        "estimated": False,
    }
    report = bl.assemble_report(
        [_layer("serving", 150 * MIB), _layer("training", 240 * MIB)], function
    )

    serving, training = report["function_plus_layers"]
    assert (
        serving["unzipped_bytes"] == 161 * MIB
        and not serving["over_cap"]
        and not serving["over_goal"]
    )
    assert training["unzipped_bytes"] == 251 * MIB and training["over_cap"]
    assert report["ok"] is False
    assert "OVER 250 MiB CAP" in bl.format_table(report)


def test_exactly_at_the_cap_passes_but_misses_the_goal() -> None:
    function = bl.function_zip_sizes(None)
    assert function["estimated"] and function["unzipped_bytes"] == 0
    report = bl.assemble_report([_layer("training", bl.LAMBDA_UNZIPPED_CAP)], function)
    assert report["ok"] is True
    assert report["function_plus_layers"][0]["over_goal"] is True
    assert "estimated as 0" in bl.format_table(report)


def test_main_exits_1_when_a_function_with_its_layer_is_over_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bl, "LAMBDA_UNZIPPED_CAP", 300_000)  # scaled down: no 250 MiB fixture
    monkeypatch.setattr(bl, "UNZIPPED_GOAL", 200_000)
    layer_dir = tmp_path / "work"
    _write(layer_dir / "python" / "big.bin", b"\0" * 200_000)
    bl.write_zip(layer_dir, tmp_path / "serving.zip")
    fn_dir = tmp_path / "fn"
    _write(fn_dir / "app.py", b"\0" * 150_000)
    bl.write_zip(fn_dir, tmp_path / "function.zip")
    report_path = tmp_path / "report.json"

    code = bl.main(
        [
            "--no-build",
            "--layer",
            "serving",
            "--out",
            str(tmp_path),
            "--function-zip",
            str(tmp_path / "function.zip"),
            "--json",
            str(report_path),
        ]
    )

    assert code == 1
    assert '"ok": false' in report_path.read_text()
    assert "OVER" in capsys.readouterr().out
    assert bl.main(["--no-build", "--layer", "serving", "--out", str(tmp_path)]) == 0


# ---------------------------------------------------------------- ELF checks (local files only)


@pytest.mark.skipif(not ON_LAMBDA_ARCH, reason="needs an x86_64 Linux host")
def test_elf_needed_matches_readelf() -> None:
    readelf = shutil.which("readelf")
    extensions = _dynload_extensions()
    if not extensions or readelf is None:
        pytest.skip("no ELF extension modules or no readelf here")
    for so in extensions[:5]:
        out = subprocess.run(
            [readelf, "-d", str(so)], capture_output=True, text=True, check=True
        ).stdout
        expected = [
            line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line
        ]
        assert bl.elf_needed(so) == expected


@pytest.mark.skipif(not ON_LAMBDA_ARCH, reason="needs an x86_64 Linux host")
def test_a_library_that_is_neither_in_the_layer_nor_on_lambda_is_reported(tmp_path: Path) -> None:
    site = tmp_path / "python"
    for so in _dynload_extensions():
        foreign = [n for n in bl.elf_needed(so) if n not in bl.SYSTEM_LIBS]
        if foreign:
            break
    else:
        pytest.skip("every extension here links system libraries only")
    copy = site / "pkg" / so.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(so, copy)

    assert bl.missing_libraries(site) == {f"pkg/{so.name}": foreign}

    (site / "pkg.libs").mkdir()
    for name in foreign:  # vendored beside it, as auditwheel does (any real ELF file will do)
        shutil.copy2(so, site / "pkg.libs" / name)
    assert bl.missing_libraries(site) == {}


@pytest.mark.skipif(
    not ON_LAMBDA_ARCH or shutil.which("strip") is None, reason="needs strip on x86_64 Linux"
)
def test_strip_leaves_vendored_libs_alone_and_keeps_objects_loadable(tmp_path: Path) -> None:
    extensions = _dynload_extensions()
    if not extensions:
        pytest.skip("no ELF extension modules here")
    site = tmp_path / "python"
    own = site / "pkg" / extensions[0].name
    vendored = site / "pkg.libs" / ("libv-" + extensions[0].name)
    for dst in (own, vendored):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(extensions[0], dst)
    vendored_bytes = vendored.read_bytes()

    saved, restored = bl.strip_shared_objects(site)

    assert vendored.read_bytes() == vendored_bytes
    assert saved == extensions[0].stat().st_size - own.stat().st_size >= 0
    assert restored == []
    assert bl.unloadable([own, vendored]) == {}
