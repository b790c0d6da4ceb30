"""The CLI refuses bad input with one `error:` line (or argparse's message) and exit 2, never a
traceback or a run on a meaningless value. None of these reach the database."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import _ran, main

ROOT = Path(__file__).resolve().parents[2]


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """argparse's refusal (exit 2) of the command line: its message."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("argv, option", [
    (["train", "conflict", "--days-back", "0"], "--days-back"),
    (["train", "fraud", "--global", "--months-back", "0"], "--months-back"),
    (["train", "ocr", "--days-back", "-3"], "--days-back"),
    (["train", "anomaly", "--days-back", "0"], "--days-back"),
    (["train", "drift", "--days", "0"], "--days"),
    (["schedule", "--rounds", "0"], "--rounds"),
    (["schedule", "--rounds", "-1"], "--rounds"),
    (["ocr", "select-batch", "--tenant", "demo", "--size", "0"], "--size"),
    (["agent", "--interval", "0"], "--interval"),
    (["train", "ocr", "--tenant", "demo", "--end", "notadate"], "--end"),
    (["train", "anomaly", "--end", "2026-13-45"], "--end"),
    (["ocr", "metrics", "--tenant", "demo", "--target-share", "nan"], "--target-share"),
    (["ocr", "metrics", "--tenant", "demo", "--target-share", "2"], "--target-share"),
    (["ocr", "metrics", "--tenant", "demo", "--target-share", "-1"], "--target-share"),
    (["ocr", "metrics", "--tenant", "demo", "--target-share", "0"], "--target-share"),
    # Windows back past year 1 (datetime cannot hold them) and ends outside 2000 up to 2100.
    (["train", "conflict", "--days-back", "999999999999"], "--days-back"),
    (["train", "conflict", "--days-back", "800000"], "--days-back"),
    (["train", "fraud", "--global", "--months-back", "30000"], "--months-back"),
    (["train", "ocr", "--days-back", "9999999999"], "--days-back"),
    (["train", "anomaly", "--days-back", "99999999999"], "--days-back"),
    (["train", "drift", "--days", "800000"], "--days"),
    (["train", "ocr", "--end", "0001-01-01T00:00:00Z"], "--end"),
    (["train", "ocr", "--end", "2999-01-01T00:00:00Z"], "--end"),
    (["agent", "--url", "notaurl", "--once"], "--url"),
])
def test_meaningless_numbers_and_dates_are_refused_by_the_parser_naming_the_option(
        capsys: pytest.CaptureFixture[str], argv: list[str], option: str) -> None:
    assert f"error: argument {option}:" in refused(capsys, *argv)


def test_the_limits_stay_usable() -> None:
    from shared.platform.cli_args import iso_datetime, open_share, positive_int, share

    assert positive_int("1") == 1 and share("1") == 1.0 and share("0.8") == 0.8 and open_share("0.5") == 0.5
    assert iso_datetime("2026-11-30").tzinfo is not None  # naive is UTC, comparable with the database's times
    assert iso_datetime("2026-11-30T10:00:00Z") == iso_datetime("2026-11-30T10:00:00+00:00")


def test_a_challenger_share_of_0_or_1_is_refused_saying_the_bounds_are_excluded(
        capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("1.0", "0", "1.5"):
        line = refused(capsys, "models", "challenger", "some-version", "--share", value)
        assert "--share" in line and "strictly between 0 and 1" in line and "excluded" in line


def test_a_missing_env_file_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = refused(capsys, "--env-file", str(tmp_path / "nonexistent.env"), "tenants", "list")
    assert line == f"mlstack: error: --env-file {tmp_path / 'nonexistent.env'}: No such file or directory"


@pytest.mark.parametrize("options, expected", [
    (["--source", ""], "error: --source: "),
    (["--source", "host-1", "--minutes", "0"], "error: --minutes: "),
    (["--source", "host-1", "--minutes", "999999"], "error: --minutes: "),
])
def test_silence_options_out_of_the_apis_bounds_are_one_error_line(
        capsys: pytest.CaptureFixture[str], options: list[str], expected: str) -> None:
    assert main(["alerts", "silence", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_an_incidents_limit_out_of_bounds_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "incidents", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --limit: ") and err.count("\n") == 1, err


def test_batch_scoring_refuses_a_missing_input_or_output_folder_before_connecting(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("user_id\n")
    assert main(["score", "conflict", "--tenant", "t", "--input", str(tmp_path / "nope.csv"),
                 "--output", str(tmp_path / "o.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: no file {tmp_path / 'nope.csv'}\n  --input: not found")
    assert main(["score", "conflict", "--tenant", "t", "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "nonexistent" / "o.csv")]) == 2
    assert "--output: folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["score", "conflict"], ["score", "fraud"], ["ocr", "triage"]])
def test_a_batch_command_never_writes_over_its_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]) -> None:
    """The output named as the input, through a link to it, or with the input as the output's
    partial file: refused before connecting (the tenant `t` exists nowhere), the input unchanged."""
    source = tmp_path / "in.csv"
    source.write_text("the user's own data\n")
    (tmp_path / "link.csv").symlink_to(source)
    (tmp_path / "hard.csv").hardlink_to(source)
    partial_named = tmp_path / "scored.csv.partial"
    partial_named.write_text("the user's own data\n")
    for given, output in ((source, source), (source, tmp_path / "link.csv"), (source, tmp_path / "hard.csv"),
                          (partial_named, tmp_path / "scored.csv")):
        assert main([*command, "--tenant", "t", "--input", str(given), "--output", str(output)]) == 2
        assert capsys.readouterr().err.endswith("--output: is the input file: choose another file\n")
        assert given.read_text() == "the user's own data\n"
    for folder in (tmp_path, Path(".")):  # a folder as the output: refused, no <folder>.partial left
        assert main([*command, "--tenant", "t", "--input", str(source), "--output", str(folder)]) == 2
        assert capsys.readouterr().err.endswith("--output: a folder: name a file in it\n")
    assert not list(tmp_path.parent.glob("*.partial"))


def test_the_safety_net_turns_file_and_validation_errors_and_ctrl_c_into_exit_codes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from pydantic import BaseModel, Field

    class Body(BaseModel):
        minutes: int = Field(ge=1)

    def opens(args: argparse.Namespace) -> None:
        (tmp_path / "missing" / "file.csv").open()

    def validates(args: argparse.Namespace) -> None:
        Body(minutes=0)

    def interrupted(args: argparse.Namespace) -> None:
        raise KeyboardInterrupt

    assert _ran(argparse.Namespace(handler=opens)) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing' / 'file.csv'}: No such file or directory\n"
    assert _ran(argparse.Namespace(handler=validates)) == 2
    assert capsys.readouterr().err == "error: minutes: Input should be greater than or equal to 1\n"
    assert _ran(argparse.Namespace(handler=interrupted)) == 130
    assert capsys.readouterr().err == ""

    def fails(args: argparse.Namespace) -> None:
        raise ValueError("a bug, not the user's input")

    with pytest.raises(ValueError):  # anything else is still a bug to see in full
        _ran(argparse.Namespace(handler=fails))


def _series(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)


def test_backtest_refuses_a_bad_timestamp_or_value_naming_file_and_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = [(f"2026-11-01T00:{m:02d}:00Z", str(m)) for m in range(40)]
    for broken, words in (((20, "not-a-time", "1.0"), "timestamp 'not-a-time'"), ((30, None, "abc"), "value 'abc'"),
                          ((31, None, "NaN"), "value 'NaN'"), ((32, None, "inf"), "value 'inf'"),
                          ((33, None, "1e999"), "value '1e999'")):  # no gap in disguise: a gap is empty
        index, stamp, value = broken
        rows = list(good)
        rows[index] = (stamp or rows[index][0], value)
        source = tmp_path / "in.csv"
        _series(source, rows)
        assert main(["anomaly", "backtest", "--input", str(source), "--output", str(tmp_path / "out.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {source}: line {index + 2}: {words}"), err  # line 1 is the header
        assert not (tmp_path / "out.csv").exists()


def test_backtest_keeps_an_empty_value_as_a_gap_scored_zero(tmp_path: Path) -> None:
    rows = [(f"2026-11-01T00:{m:02d}:00Z", "" if m == 35 else str(m % 7)) for m in range(40)]
    _series(tmp_path / "in.csv", rows)
    assert main(["anomaly", "backtest", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")]) == 0
    scored = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(scored) == 40 and scored[35]["value"] == "" and float(scored[35]["anomaly_score"]) == 0.0


def test_backtest_files_a_folder_whole_or_not_at_all_and_never_over_its_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [(f"2026-11-01T00:{m:02d}:00Z", str(m % 7)) for m in range(40)]
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _series(folder / "a.csv", rows)
    (folder / "sub" / "b.csv").write_bytes(b"\xef\xbb\xbf" + (folder / "a.csv").read_bytes())  # Excel's BOM
    # The input folder itself, or a folder inside it: refused, nothing written.
    for output in (folder, folder / "scored"):
        assert main(["anomaly", "backtest", "--input", str(folder), "--output", str(output)]) == 2
        assert "inside it" in capsys.readouterr().err
    assert sorted(p.name for p in folder.rglob("*")) == ["a.csv", "b.csv", "sub"]
    # One file going back in time: no file of the run is written.
    _series(folder / "sub" / "c.csv", [rows[1], rows[0], *rows[2:]])
    assert main(["anomaly", "backtest", "--input", str(folder), "--output", str(tmp_path / "out")]) == 2
    assert "ascending" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (folder / "sub" / "c.csv").unlink()
    assert main(["anomaly", "backtest", "--input", str(folder), "--output", str(tmp_path / "out")]) == 0
    mirrored = [list(csv.DictReader((tmp_path / "out" / name).open())) for name in ("a.csv", "sub/b.csv")]
    assert [r["anomaly_score"] for r in mirrored[0]] == [r["anomaly_score"] for r in mirrored[1]]
    # A file's output written with a trailing slash is a folder, made if missing.
    assert main(["anomaly", "backtest", "--input", str(folder / "a.csv"), "--output", f"{tmp_path}/new/"]) == 0
    assert (tmp_path / "new" / "a.csv").is_file()
    assert main(["anomaly", "backtest", "--input", str(folder / "a.csv"), "--output", str(folder / "a.csv")]) == 2
    assert "is the input file" in capsys.readouterr().err
    # A hard link to an input (no resolved path shows it), alone or in the output folder: refused, unchanged.
    before = (folder / "a.csv").read_bytes()
    (tmp_path / "hard.csv").hardlink_to(folder / "a.csv")
    assert main(["anomaly", "backtest", "--input", str(folder / "a.csv"), "--output", str(tmp_path / "hard.csv")]) == 2
    assert "a link to it" in capsys.readouterr().err
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "a.csv").hardlink_to(folder / "a.csv")
    assert main(["anomaly", "backtest", "--input", str(folder), "--output", str(tmp_path / "linked")]) == 2
    assert "a link to it" in capsys.readouterr().err and (folder / "a.csv").read_bytes() == before


def test_the_mlstack_process_shows_no_traceback_for_these() -> None:
    result = subprocess.run([sys.executable, "-m", "shared.cli", "--env-file", "/nonexistent", "tenants", "list"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "mlstack: error: --env-file /nonexistent: No such file or directory"
