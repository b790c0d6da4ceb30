"""The gates' kept plate counts (migration 0025), checked against a count of the stored readings,
and counted again when they differ: `mlstack ocr plate-counts`. The triggers keep them right as
readings and corrections are stored; a difference means the tables were changed by hand past them
(TRUNCATE, triggers off, a count edited, a reading's source type changed)."""

from __future__ import annotations

from typing import Any

from shared.adapters.db import Database

SHOWN = 20  # differences listed in the report (all are counted)

_DIFFERENCES_SQL = """
SELECT source_id, plate_text, kept, counted FROM ocr_plate_count_differences(CAST(:tenant AS uuid))
"""


def _differences(tx: Any, tenant_id: str) -> list[dict[str, Any]]:
    return tx.fetch_all(_DIFFERENCES_SQL, tenant=tenant_id)  # type: ignore[no-any-return]


def check_plate_counts(database: Database, tenant_id: str, recount: bool = False) -> dict[str, Any]:
    """How many of the tenant's kept counts differ from a count of its readings; with `recount`,
    its counts made again from its readings, with every writer of readings and corrections held
    off until done (a table lock: other tenants' intake waits too, for the recount's time)."""
    with database.transaction() as tx:
        if recount:
            tx.execute("LOCK TABLE ocr_corrections, ocr_readings IN SHARE ROW EXCLUSIVE MODE")  # the triggers' order
        found = _differences(tx, tenant_id)
        report: dict[str, Any] = {"differences": len(found), "first_differences": found[:SHOWN]}
        if recount:
            report["texts_counted"] = int(tx.fetch_value("SELECT ocr_plate_counts_recount(CAST(:tenant AS uuid))",
                                                         tenant=tenant_id))
            report["differences_after"] = len(_differences(tx, tenant_id))
    return report
