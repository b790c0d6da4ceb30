#!/usr/bin/env python3
"""Build the Lambda layers described in layers/ and report their sizes.

Each folder layers/<name>/ with a requirements.txt is one layer:

  requirements.in   what the layer is for (top-level packages), input of --lock
  requirements.txt  the lock: every package, transitive ones included, pinned with == and
                    a sha256 hash of the one wheel used (python 3.12, manylinux, x86_64)
  smoke.py          run by --verify inside the unzipped layer, in a fresh isolated interpreter

For each layer the build
  1. installs the lock with pip, wheels only, for the Lambda platform (never from what is
     installed locally: --target makes pip ignore the running environment),
  2. prunes what Lambda never runs (tests, type stubs, C/Cython sources and headers, scripts),
  3. strips the debug symbols of the packages' shared objects (never the libraries that
     auditwheel vendored into *.libs/: patchelf rewrote those, and strip breaks them), then
     dlopen()s every shared object and restores any that no longer loads,
  4. precompiles bytecode with unchecked-hash invalidation (a layer is read-only under /opt, and
     zip timestamps are too coarse for timestamp-checked .pyc files),
  5. writes a reproducible zip to <out>/<name>.zip (sorted entries, fixed timestamps),
  6. reports zipped and unzipped sizes, of each layer and of each function + its layer, and
     exits 1 when one passes AWS's cap of 250 MB unzipped (goal: 200 MB).

With --verify each zip is unzipped again and imported by `python -I -S -B` whose sys.path is
the layer folder and the standard library only; import times are reported.

Stdlib only. Run it with the Lambda runtime's Python (3.12), e.g.
    PYENV_VERSION=3.12.1 pyenv exec python scripts/build_layers.py --verify
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import py_compile
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = ROOT / "layers"
DEFAULT_OUT = ROOT / "build" / "layers"

PYTHON_VERSION = (3, 12)  # the Lambda runtime: python3.12 (Amazon Linux 2023, glibc 2.34)
PYTHON_TAG = f"{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}"
# x86_64 because it is this build machine's architecture: the zip can be import-tested here.
# manylinux_2_28 wheels need glibc >= 2.28; the python3.12 runtime has 2.34.
PIP_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux_2_28_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    PYTHON_TAG,
]

MIB = 1024 * 1024
# AWS: "250 MB" for a function and all its layers, unzipped = 262,144,000 bytes (250 MiB).
LAMBDA_UNZIPPED_CAP = 250 * MIB
UNZIPPED_GOAL = 200 * MIB

# Pruning rules: what Lambda never runs.
PRUNE_DIR_NAMES = frozenset({"tests", "test", "__pycache__"})
PRUNE_TOP_LEVEL_DIRS = frozenset({"bin"})  # console scripts: not on PATH under /opt/python
PRUNE_SUFFIXES = (
    ".pyi",  # type stubs
    ".pxd",
    ".pyx",
    ".pxi",
    ".tp",  # Cython sources and templates (build time only)
    ".c",
    ".cc",
    ".cpp",
    ".h",
    ".hpp",  # C/C++ sources and headers (build time only)
    ".a",  # static libraries (only to link against at build time)
)
# Folders whose shared objects were grafted in by auditwheel (then rewritten by patchelf).
VENDORED_LIB_DIR_SUFFIX = ".libs"

# System libraries that a manylinux wheel may link to without vendoring them (the manylinux
# policy); the Lambda python3.12 runtime provides them. Anything else must be in the layer.
SYSTEM_LIBS = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libresolv.so.2",
        "libnsl.so.1",
        "libcrypt.so.1",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "ld-linux-x86-64.so.2",
        # not in the manylinux list, but scipy's vendored libgfortran needs it; the runtime has it
        # (CPython's zlib module links it)
        "libz.so.1",
    }
)


class BuildError(Exception):
    """A layer could not be built or verified."""


@dataclass
class LayerReport:
    name: str
    zip_path: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    packages: dict[str, str]  # name -> version, from *.dist-info
    top_level_bytes: dict[str, int]  # unzipped size of each top-level entry of python/
    pruned_bytes: int = 0
    stripped_bytes_saved: int = 0
    strip_restored: list[str] = field(default_factory=list)
    sourceless: bool = False
    sources_removed_bytes: int = 0
    build_seconds: float = 0.0
    verify: dict | None = None


# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def discover_layers() -> list[str]:
    """Every folder of layers/ with a requirements.txt (or a requirements.in still to --lock)."""
    return sorted(
        d.name
        for d in LAYERS_DIR.iterdir()
        if d.is_dir() and ((d / "requirements.txt").is_file() or (d / "requirements.in").is_file())
    )


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def is_shared_object(path: Path) -> bool:
    name = path.name
    if not (name.endswith(".so") or ".so." in name):
        return False
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def shared_objects(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.so*") if is_shared_object(p))


def in_vendored_lib_dir(path: Path, root: Path) -> bool:
    return any(part.endswith(VENDORED_LIB_DIR_SUFFIX) for part in path.relative_to(root).parts[:-1])


# --------------------------------------------------------------------------- pruning


def prune_tree(root: Path) -> int:
    """Delete what Lambda never runs under root (the layer's python/ folder); return bytes freed."""
    freed = 0
    for entry in list(root.iterdir()):
        if entry.is_dir() and entry.name in PRUNE_TOP_LEVEL_DIRS:
            freed += tree_bytes(entry)
            shutil.rmtree(entry)
    # top-down, so a pruned folder is not descended into
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        keep = []
        for d in dirnames:
            if d.endswith(".dist-info"):
                continue  # package metadata (METADATA, RECORD, licences) stays whole
            if d in PRUNE_DIR_NAMES:
                freed += tree_bytes(here / d)
                shutil.rmtree(here / d)
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            if f.endswith(PRUNE_SUFFIXES) or f.endswith(".pyc"):
                p = here / f
                freed += p.stat().st_size
                p.unlink()
    return freed


# --------------------------------------------------------------------------- ELF: strip, load, NEEDED


def elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF file (stdlib only)."""
    data = path.read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError(f"{path}: not a 64-bit little-endian ELF file")
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link
        _, sh_type, _, _, sh_offset, sh_size, sh_link = struct.unpack_from("<IIQQQQI", data, off)
        sections.append((sh_type, sh_offset, sh_size, sh_link))
    needed: list[str] = []
    for sh_type, sh_offset, sh_size, sh_link in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        str_off = sections[sh_link][1]
        for off in range(sh_offset, sh_offset + sh_size, 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", str_off + val)
                needed.append(data[str_off + val : end].decode())
    return needed


def missing_libraries(root: Path) -> dict[str, list[str]]:
    """Shared objects whose NEEDED libraries are neither in the layer nor system libraries."""
    objects = shared_objects(root)
    present = {p.name for p in objects}
    missing: dict[str, list[str]] = {}
    for so in objects:
        gone = [n for n in elf_needed(so) if n not in present and n not in SYSTEM_LIBS]
        if gone:
            missing[str(so.relative_to(root))] = gone
    return missing


_LOAD_CHECK = """
import ctypes, json, os, sys
bad = {}
for p in sys.argv[1:]:
    try:
        ctypes.CDLL(p, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as e:
        bad[p] = str(e)
print(json.dumps(bad))
"""


def unloadable(paths: list[Path]) -> dict[str, str]:
    """dlopen() each shared object in a fresh process; return those that fail, with the error."""
    if not paths:
        return {}
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _LOAD_CHECK, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def host_is_lambda_arch() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64"


def strip_shared_objects(root: Path) -> tuple[int, list[str]]:
    """strip --strip-unneeded the packages' own shared objects; keep only those that still load.

    Returns (bytes saved, shared objects restored because stripping broke them).
    """
    strip = shutil.which("strip")
    if strip is None or not host_is_lambda_arch():
        log("  strip: skipped (no strip, or this is not an x86_64 Linux host)")
        return 0, []
    candidates = [p for p in shared_objects(root) if not in_vendored_lib_dir(p, root)]
    before = {p: p.stat().st_size for p in candidates}
    with tempfile.TemporaryDirectory(prefix="layer-strip-") as tmp:
        backups = {}
        for i, p in enumerate(candidates):
            backups[p] = Path(tmp) / str(i)
            shutil.copy2(p, backups[p])
        subprocess.run([strip, "--strip-unneeded", *map(str, candidates)], check=True)
        restored = []
        broken = unloadable(shared_objects(root))
        for path_str in broken:
            p = Path(path_str)
            if p in backups:
                shutil.copy2(backups[p], p)
                restored.append(str(p.relative_to(root)))
        if restored:
            log(f"  strip: restored {len(restored)} shared object(s) that no longer loaded")
    still_broken = unloadable(shared_objects(root))
    if still_broken:
        raise BuildError(f"shared objects that do not load: {json.dumps(still_broken, indent=1)}")
    saved = sum(before[p] - p.stat().st_size for p in candidates)
    return saved, restored


# --------------------------------------------------------------------------- bytecode, zip


def compile_bytecode(root: Path, sourceless: bool = False, ddir: str = "/opt/python") -> int:
    """Precompile every .py for the Lambda Python; the code folders (/opt, /var/task) are
    read-only there, so without this every cold start compiles every module it imports.

    unchecked-hash .pyc files are used as they are, whatever the files' timestamps (a zip keeps
    them only to 2 s). With sourceless, each module.py becomes module.pyc beside it and the .py
    is deleted: smaller, but tracebacks show no source lines. Returns the bytes of .py deleted.
    """
    if sys.version_info[:2] != PYTHON_VERSION:
        raise BuildError(
            f"bytecode must be compiled by Python {PYTHON_TAG} (the Lambda runtime); "
            f"this is {platform.python_version()}"
        )
    ok = compileall.compile_dir(
        str(root),
        quiet=1,
        workers=0,
        ddir=ddir,
        legacy=sourceless,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise BuildError("compileall reported errors (see above)")
    removed = 0
    if sourceless:
        for py in root.rglob("*.py"):
            if py.with_suffix(".pyc").is_file():
                removed += py.stat().st_size
                py.unlink()
    return removed


FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_zip(layer_dir: Path, zip_path: Path) -> None:
    """Zip a folder's contents reproducibly: sorted names, fixed times, 644/755."""
    tmp = zip_path.with_suffix(".zip.tmp")
    files = sorted(p for p in layer_dir.rglob("*") if p.is_file())
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in files:
            info = zipfile.ZipInfo(p.relative_to(layer_dir).as_posix(), FIXED_ZIP_TIME)
            mode = 0o755 if os.access(p, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with p.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(zip_path)


def zip_sizes(zip_path: Path) -> tuple[int, int, int]:
    """(zipped bytes, unzipped bytes, file count) of a zip; unzipped is what AWS counts."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    return zip_path.stat().st_size, sum(i.file_size for i in infos), len(infos)


def installed_packages(site: Path) -> dict[str, str]:
    found = {}
    for d in sorted(site.glob("*.dist-info")):
        meta = (d / "METADATA").read_text(encoding="utf-8", errors="replace")
        fields = dict(line.split(": ", 1) for line in meta.splitlines()[:20] if ": " in line)
        found[fields.get("Name", d.name)] = fields.get("Version", "?")
    return found


def top_level_sizes(site: Path) -> dict[str, int]:
    sizes = {}
    for entry in sorted(site.iterdir()):
        sizes[entry.name] = tree_bytes(entry) if entry.is_dir() else entry.stat().st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- build one layer


PIP_INSTALL = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"]


def pip_install(requirements: Path, target: Path) -> None:
    cmd = [
        *PIP_INSTALL,
        "--no-compile",
        "--require-hashes",
        *PIP_PLATFORM_ARGS,
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    log("  $ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def build_layer(name: str, out: Path, sourceless: bool = False) -> LayerReport:
    started = time.perf_counter()
    requirements = LAYERS_DIR / name / "requirements.txt"
    if not requirements.is_file():
        raise BuildError(f"no layer {name!r}: {requirements} does not exist")
    work = out / name
    site = work / "python"  # Lambda puts /opt/python on sys.path
    if work.exists():
        shutil.rmtree(work)
    site.mkdir(parents=True)
    log(f"[{name}] pip install")
    pip_install(requirements, site)
    installed = tree_bytes(site)
    log(f"[{name}] installed {mib(installed)} MiB; pruning")
    pruned = prune_tree(site)
    log(f"[{name}] pruned {mib(pruned)} MiB; stripping")
    saved, restored = strip_shared_objects(site)
    log(f"[{name}] strip saved {mib(saved)} MiB; checking linked libraries")
    if host_is_lambda_arch():
        missing = missing_libraries(site)
        if missing:
            raise BuildError(f"libraries neither in the layer nor on Lambda: {missing}")
    log(f"[{name}] compiling bytecode" + (" (sourceless)" if sourceless else ""))
    sources_removed = compile_bytecode(site, sourceless)
    zip_path = out / f"{name}.zip"
    log(f"[{name}] zipping {zip_path}")
    write_zip(work, zip_path)
    zipped, unzipped, count = zip_sizes(zip_path)
    return LayerReport(
        name=name,
        zip_path=str(zip_path),
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        files=count,
        packages=installed_packages(site),
        top_level_bytes=top_level_sizes(site),
        pruned_bytes=pruned,
        stripped_bytes_saved=saved,
        strip_restored=restored,
        sourceless=sourceless,
        sources_removed_bytes=sources_removed,
        build_seconds=round(time.perf_counter() - started, 1),
    )


def existing_layer_report(name: str, out: Path) -> LayerReport:
    """Sizes of an already built zip (for --no-build)."""
    zip_path = out / f"{name}.zip"
    if not zip_path.is_file():
        raise BuildError(f"{zip_path} does not exist: build it first")
    zipped, unzipped, count = zip_sizes(zip_path)
    return LayerReport(name, str(zip_path), zipped, unzipped, count, {}, {})


# --------------------------------------------------------------------------- verify


_VERIFY_BOOTSTRAP = """
import json, runpy, sys, time
t0 = time.perf_counter()
layer, smoke = sys.argv[1], sys.argv[2]
sys.path[:] = [layer] + [p for p in sys.path if 'site-packages' not in p]
result = runpy.run_path(smoke, run_name='__smoke__')['run']()
stray = sorted(
    m for m, mod in list(sys.modules.items())
    if (getattr(mod, '__file__', None) or '').endswith('.py')
    and 'site-packages' in (mod.__file__ or '')
)
not_from_layer = sorted(
    m for m in result.get('modules', []) if not sys.modules[m].__file__.startswith(layer)
)
import importlib.util, os
no_pyc = sorted(
    m for m, mod in list(sys.modules.items())
    if (getattr(mod, '__file__', None) or '').startswith(layer)
    and mod.__file__.endswith('.py')
    and not os.path.exists(importlib.util.cache_from_source(mod.__file__))
)
result.update(stray_site_packages=stray, not_from_layer=not_from_layer, modules_without_pyc=no_pyc,
              sys_path=sys.path, total_seconds=time.perf_counter() - t0)
print('@@RESULT@@' + json.dumps(result))
"""


def run_smoke(layer_site: Path, smoke: Path) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "OMP_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
    }
    started = time.perf_counter()
    proc = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [sys.executable, "-I", "-S", "-B", "-c", _VERIFY_BOOTSTRAP, str(layer_site), str(smoke)],
        capture_output=True,
        text=True,
        env=env,
        cwd=layer_site.parent,
    )
    wall = time.perf_counter() - started
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    if proc.returncode != 0 or not marker:
        raise BuildError(f"smoke test {smoke} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(marker[-1][len("@@RESULT@@") :])
    result["process_seconds"] = wall
    return result


def verify_layer(report: LayerReport, out: Path, runs: int) -> dict:
    name = report.name
    smoke = LAYERS_DIR / name / "smoke.py"
    if not smoke.is_file():
        raise BuildError(f"{smoke} does not exist")
    unpacked = out / f"{name}-verify"
    if unpacked.exists():
        shutil.rmtree(unpacked)
    with zipfile.ZipFile(report.zip_path) as zf:
        zf.extractall(unpacked)
    site = unpacked / "python"
    try:
        broken = unloadable(shared_objects(site)) if host_is_lambda_arch() else {}
        if broken:
            raise BuildError(f"shared objects in the zip that do not load: {broken}")
        results = [run_smoke(site, smoke) for _ in range(runs)]
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    first = results[0]
    for key in ("stray_site_packages", "not_from_layer", "modules_without_pyc"):
        if first[key]:
            raise BuildError(f"[{name}] verify: {key}: {first[key]}")
    imports = {
        mod: {
            "first": round(results[0]["imports"][mod], 3),
            "median": round(statistics.median(r["imports"][mod] for r in results), 3),
        }
        for mod in first["imports"]
    }
    return {
        "runs": runs,
        "python": platform.python_version(),
        "import_seconds": imports,
        "process_seconds_median": round(
            statistics.median(r["process_seconds"] for r in results), 3
        ),
        "checks": first.get("checks", {}),
        "absent_modules": first.get("absent", []),
        "sys_path": first["sys_path"],
        "shared_objects_loaded": True,
    }


# --------------------------------------------------------------------------- report


def function_zip_sizes(path: Path | None) -> dict:
    if path is None:
        return {
            "path": None,
            "zipped_bytes": 0,
            "unzipped_bytes": 0,
            "estimated": True,
            "note": "no --function-zip given: the function's own zip is counted as 0 bytes",
        }
    zipped, unzipped, count = zip_sizes(path)
    return {
        "path": str(path),
        "zipped_bytes": zipped,
        "unzipped_bytes": unzipped,
        "files": count,
        "estimated": False,
    }


def assemble_report(layers: list[LayerReport], function: dict) -> dict:
    combos = []
    for layer in layers:
        total = function["unzipped_bytes"] + layer.unzipped_bytes
        combos.append(
            {
                "function_with": [layer.name],
                "unzipped_bytes": total,
                "zipped_bytes": function["zipped_bytes"] + layer.zipped_bytes,
                "over_cap": total > LAMBDA_UNZIPPED_CAP,
                "over_goal": total > UNZIPPED_GOAL,
                "function_size_estimated": function["estimated"],
            }
        )
    return {
        "python_version": PYTHON_TAG,
        "platform": "manylinux x86_64",
        "cap_unzipped_bytes": LAMBDA_UNZIPPED_CAP,
        "goal_unzipped_bytes": UNZIPPED_GOAL,
        "layers": [asdict(layer) for layer in layers],
        "function": function,
        "function_plus_layers": combos,
        "ok": not any(c["over_cap"] for c in combos),
    }


def format_table(report: dict) -> str:
    rows = [("what", "zipped MiB", "unzipped MiB", "note")]
    for layer in report["layers"]:
        note = f"{layer['files']} files"
        if layer.get("verify"):
            imp = layer["verify"]["import_seconds"]
            note += "; import s (median): " + ", ".join(
                f"{m} {v['median']:.2f}" for m, v in imp.items()
            )
        rows.append(
            (
                f"layer {layer['name']}",
                mib(layer["zipped_bytes"]),
                mib(layer["unzipped_bytes"]),
                note,
            )
        )
    fn = report["function"]
    rows.append(
        (
            "function zip",
            mib(fn["zipped_bytes"]),
            mib(fn["unzipped_bytes"]),
            "estimated as 0 (no --function-zip)" if fn["estimated"] else fn["path"],
        )
    )
    for c in report["function_plus_layers"]:
        state = (
            "OVER 250 MiB CAP"
            if c["over_cap"]
            else ("over 200 MiB goal" if c["over_goal"] else "ok")
        )
        rows.append(
            (
                "function + " + "+".join(c["function_with"]),
                mib(c["zipped_bytes"]),
                mib(c["unzipped_bytes"]),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- lock


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_layer(name: str) -> Path:
    """Resolve layers/<name>/requirements.in for the Lambda platform; write requirements.txt."""
    source = LAYERS_DIR / name / "requirements.in"
    target = LAYERS_DIR / name / "requirements.txt"
    with tempfile.TemporaryDirectory(prefix="layer-lock-") as tmp:
        report_path = Path(tmp) / "report.json"
        subprocess.run(
            [
                *PIP_INSTALL,
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report_path),
                *PIP_PLATFORM_ARGS,
                "--target",
                str(Path(tmp) / "t"),
                "-r",
                str(source),
            ],
            check=True,
        )
        resolved = json.loads(report_path.read_text())["install"]
    lines = [
        f"# Layer {name!r}: generated by `scripts/build_layers.py --lock --layer {name}`",
        f"# from requirements.in, for CPython {PYTHON_TAG} manylinux x86_64 wheels.",
        "# Every package, transitive ones included, pinned to one wheel by its sha256.",
    ]
    wanted_by: dict[str, list[str]] = {}
    for item in resolved:
        for dep in item["metadata"].get("requires_dist") or []:
            if "extra ==" not in dep:
                dep_name = re.split(r"[ ;<>=!~\[(]", dep, maxsplit=1)[0]
                wanted_by.setdefault(canonical(dep_name), []).append(
                    item["metadata"]["name"].lower()
                )
    for item in sorted(resolved, key=lambda i: canonical(i["metadata"]["name"])):
        meta = item["metadata"]
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        if not item.get("requested"):
            lines.append(
                "# via " + ", ".join(sorted(wanted_by.get(canonical(meta["name"]), ["?"])))
            )
        lines.append(f"{meta['name'].lower()}=={meta['version']} \\")
        lines.append(f"    --hash=sha256:{digest}")
    target.write_text("\n".join(lines) + "\n")
    return target


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--layer",
        action="append",
        choices=discover_layers(),
        help="build only this layer (repeatable; default: all)",
    )
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/layers)"
    )
    ap.add_argument("--json", type=Path, help="also write the report as JSON to this path")
    ap.add_argument(
        "--function-zip",
        type=Path,
        help="the chalice deployment zip, to add its unzipped size to each layer's",
    )
    ap.add_argument(
        "--verify",
        action="store_true",
        help="import-test each zip in an isolated interpreter and time the imports",
    )
    ap.add_argument("--verify-runs", type=int, default=3, help="smoke runs per layer (default 3)")
    ap.add_argument(
        "--sourceless",
        action="store_true",
        help="ship .pyc without the .py sources (about 26 MiB less for training; "
        "tracebacks then show no source lines)",
    )
    ap.add_argument(
        "--no-build", action="store_true", help="report (and verify) existing zips only"
    )
    ap.add_argument(
        "--lock",
        action="store_true",
        help="regenerate layers/<name>/requirements.txt from requirements.in, then exit",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.layer or discover_layers()
    if not names:
        log(f"error: no layer folders with a requirements file under {LAYERS_DIR}")
        return 2
    if args.lock:
        for name in names:
            log(f"locked {lock_layer(name)}")
        return 0
    if not args.no_build and sys.version_info[:2] != PYTHON_VERSION:
        log(
            f"error: run this with Python {PYTHON_TAG}, the Lambda runtime's (bytecode is built for it)"
        )
        return 2
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        function = function_zip_sizes(args.function_zip)
        reports = []
        for name in names:
            report = (
                existing_layer_report(name, out)
                if args.no_build
                else build_layer(name, out, args.sourceless)
            )
            if args.verify:
                log(f"[{name}] verifying ({args.verify_runs} runs)")
                report.verify = verify_layer(report, out, args.verify_runs)
            reports.append(report)
    except (BuildError, subprocess.CalledProcessError) as exc:
        log(f"error: {exc}")
        return 2
    full = assemble_report(reports, function)
    text = json.dumps(full, indent=2)
    print(text)
    print()
    print(format_table(full))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if not full["ok"]:
        log(f"error: a function with its layer exceeds {mib(LAMBDA_UNZIPPED_CAP)} MiB unzipped")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
