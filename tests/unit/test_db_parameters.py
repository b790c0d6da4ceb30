"""The database URL's sslmode as libpq reads it: `disable` (the default) never asks the server for
SSL, `prefer` asks and falls back to plain text, `require` insists."""

from __future__ import annotations

import ssl

from shared.adapters.db import ConnectionParameters


def test_disable_never_asks_for_ssl() -> None:
    assert ConnectionParameters.from_url("postgresql://u@db:5432/x").ssl_context() is False
    assert ConnectionParameters.from_url("postgresql://u@db:5432/x?sslmode=disable").ssl_context() is False


def test_prefer_asks_and_require_insists() -> None:
    assert ConnectionParameters.from_url("postgresql://u@db:5432/x?sslmode=prefer").ssl_context() is None
    required = ConnectionParameters.from_url("postgresql://u@db:5432/x?sslmode=require").ssl_context()
    assert isinstance(required, ssl.SSLContext) and required.verify_mode == ssl.CERT_NONE
