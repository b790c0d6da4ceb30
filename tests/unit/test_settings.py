import pytest

from shared.errors import ConfigurationError
from shared.settings import settings_from_environment

VALID = {
    "MLSTACK_DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/mlstack",
    "MLSTACK_OBJECT_STORE_URL": "s3://models/prefix",
    "MLSTACK_SIGNING_KEY": "ab" * 32,
}


def test_valid_environment_gives_typed_settings() -> None:
    settings = settings_from_environment({**VALID, "MLSTACK_MODEL_REFRESH_SECONDS": "15"})
    assert settings.model_refresh_seconds == 15.0
    assert settings.aws_region == "us-east-1"


@pytest.mark.parametrize("missing", ["MLSTACK_DATABASE_URL", "MLSTACK_SIGNING_KEY", "MLSTACK_OBJECT_STORE_URL"])
def test_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        settings_from_environment(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLSTACK_OBJECT_STORE_URL", "ftp://x/y"),
        ("MLSTACK_OBJECT_STORE_URL", "file://relative/path"),
        ("MLSTACK_DATABASE_URL", "mysql://x"),
        ("MLSTACK_SIGNING_KEY", "abcd"),
        ("MLSTACK_SIGNING_KEY", "zz" * 32),
        ("MLSTACK_LOG_LEVEL", "LOUD"),
        ("MLSTACK_MODEL_REFRESH_SECONDS", "-1"),
    ],
)
def test_malformed_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings_from_environment({**VALID, name: value})


def test_secret_ids_stand_in_for_url_and_key() -> None:
    env = {
        "MLSTACK_DATABASE_SECRET_ID": "mlstack/db",
        "MLSTACK_SIGNING_KEY_SECRET_ID": "mlstack/signing",
        "MLSTACK_OBJECT_STORE_URL": "s3://b",
    }
    settings = settings_from_environment(env)
    assert settings.database_secret_id == "mlstack/db"


def test_the_signing_key_never_shows_in_a_repr() -> None:
    settings = settings_from_environment(VALID)
    assert settings.signing_key == "ab" * 32
    assert "ab" * 32 not in repr(settings) and "ab" * 32 not in str(settings)


def test_a_lambda_cold_start_fails_on_bad_settings_naming_the_variable() -> None:
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "mlstack-dev", **VALID,
           "MLSTACK_OBJECT_STORE_URL": "ftp://nope"}
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=Path(__file__).resolve().parents[2],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "MLSTACK_OBJECT_STORE_URL" in result.stderr
    good = subprocess.run([sys.executable, "-c", "import app"], cwd=Path(__file__).resolve().parents[2],
                          env={**env, "MLSTACK_OBJECT_STORE_URL": "s3://bucket/models"}, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("TRUE", True), ("1", True), ("off", False), ("0", False)])
def test_a_switch_reads_the_usual_words(value: str, expected: bool) -> None:
    assert settings_from_environment({**VALID, "MLSTACK_DRIFT_RETRAIN": value}).drift_retrain is expected


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("MLSTACK_DRIFT_RETRAIN", "maybe", "true or false"),
        ("MLSTACK_SCORING_PROCESSES", "0", "from 1 to 64"),
        ("MLSTACK_SCORING_PROCESSES", "2.5", "whole number"),
        ("MLSTACK_SCORING_PROCESSES", "\u0661\u0662", "a number"),
        ("MLSTACK_MODEL_REFRESH_SECONDS", "nan", "finite"),
        ("MLSTACK_STATEMENT_TIMEOUT_SECONDS", "soon", "a number"),
    ],
)
def test_a_value_of_the_wrong_kind_is_named_with_the_reason(name: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name}: .*{reason}"):
        settings_from_environment({**VALID, name: value})


def test_every_problem_is_named_at_once_and_a_copy_is_checked_again() -> None:
    from dataclasses import replace

    with pytest.raises(ConfigurationError) as refused:
        settings_from_environment({**VALID, "MLSTACK_LOG_LEVEL": "LOUD", "MLSTACK_MONITORING_RAW_DAYS": "0"})
    assert "MLSTACK_LOG_LEVEL" in str(refused.value) and "MLSTACK_MONITORING_RAW_DAYS" in str(refused.value)
    settings = settings_from_environment({**VALID, "MLSTACK_STATEMENT_TIMEOUT_SECONDS": "10"})
    assert settings.statement_timeout_seconds == 10.0 and replace(settings, scoring_processes=3).scoring_processes == 3
    with pytest.raises(ConfigurationError, match="MLSTACK_SCORING_PROCESSES"):
        replace(settings, scoring_processes=65)


def test_a_whole_number_may_be_written_with_a_point_and_a_switch_with_spaces() -> None:
    settings = settings_from_environment({**VALID, "MLSTACK_SCORING_PROCESSES": "2.0", "MLSTACK_DRIFT_RETRAIN": " on "})
    assert settings.scoring_processes == 2 and isinstance(settings.scoring_processes, int)
    assert settings.drift_retrain is True


def test_a_missing_variable_and_a_malformed_one_are_named_together() -> None:
    env = {k: v for k, v in VALID.items() if k not in ("MLSTACK_DATABASE_URL", "MLSTACK_OBJECT_STORE_URL")}
    with pytest.raises(ConfigurationError) as refused:
        settings_from_environment({**env, "MLSTACK_LOG_LEVEL": "LOUD"})
    message = str(refused.value)
    assert "MLSTACK_LOG_LEVEL" in message and "MLSTACK_DATABASE_URL" in message
    assert "MLSTACK_OBJECT_STORE_URL: must be set" in message
