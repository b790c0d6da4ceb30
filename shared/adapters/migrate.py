"""Numbered SQL migrations, applied once each under an advisory lock, with a record of what ran."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from shared.adapters.db import Database

# Any constant: every migrator takes the same session lock, so two cold starts cannot race.
MIGRATION_LOCK_ID = 7_340_101
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("shared.adapters.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.number)


def migrate(database: Database) -> list[str]:
    """Apply what has not run yet; return the names applied. Safe to call from many processes."""
    database.run_outside_transaction("SELECT pg_advisory_lock(:id)", id=MIGRATION_LOCK_ID)
    try:
        with database.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " number integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["number"]: row for row in tx.fetch_all("SELECT * FROM schema_migrations")}
        applied = []
        for migration in available_migrations():
            if migration.number in done:
                if done[migration.number]["checksum"] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.number:04d}_{migration.name} changed after it ran"
                    )
                continue
            with database.transaction() as tx:
                tx.execute_script(migration.sql)
                tx.execute(
                    "INSERT INTO schema_migrations (number, name, checksum)"
                    " VALUES (:n, :name, :sum)",
                    n=migration.number,
                    name=migration.name,
                    sum=migration.checksum,
                )
            applied.append(f"{migration.number:04d}_{migration.name}")
        return applied
    finally:
        database.run_outside_transaction("SELECT pg_advisory_unlock(:id)", id=MIGRATION_LOCK_ID)
