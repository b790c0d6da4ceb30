"""Bulk imports meet the files people really have: Excel's byte-order mark, a file cut inside a
character, an id already stored with other content, an empty or header-only file — each reported
by line (or said plainly), and nothing stored."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.conflict.ingest import ingest_sync_events
from shared.context import AppContext
from shared.errors import Conflict, InvalidInput
from shared.fraud.ingest import ingest_attendance

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 10, 1, 9, tzinfo=UTC)
SYNC_HEADER = "client_event_id,user_id,device_id,domain,entity_type,entity_id,fields_changed,received_at,conflicted\n"


def sync_row(i: int, user: str = "alice") -> str:
    return f"ev-{i},{user},phone,voice,recording,r{i},notes;title,{(AT + timedelta(minutes=i)).isoformat()},false\n"


def count(context: AppContext, table: str) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value(f"SELECT count(*) FROM {table}"))


def test_a_csv_saved_by_excel_with_a_byte_order_mark_imports(context: AppContext, tmp_path: Path) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (SYNC_HEADER + sync_row(1) + sync_row(2)).encode())
    assert ingest_sync_events(context, tenant, path)["stored"] == 2


def test_a_file_cut_inside_a_character_is_reported_by_line(context: AppContext, tmp_path: Path) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    csv_path = tmp_path / "cut.csv"
    csv_path.write_bytes((SYNC_HEADER + sync_row(1)).encode() + "ev-2,j\u00f6".encode()[:-1] + b",phone\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_sync_events(context, tenant, csv_path)
    assert [(p.field, p.reason) for p in refused.value.fields] == [("line 3", "not valid UTF-8 text")]
    ndjson = tmp_path / "cut.ndjson"
    good = json.dumps({"client_event_id": "a1", "user_id": "u", "site_id": "s", "device_id": "d",
                       "event_type": "check_in", "occurred_at": AT.isoformat()})
    ndjson.write_bytes(good.encode() + b"\n" + '{"user_id": "j\u00f6'.encode()[:-1] + b"\n")
    with pytest.raises(InvalidInput) as refused_ndjson:
        ingest_attendance(context, tenant, ndjson)
    assert [p.field for p in refused_ndjson.value.fields] == ["line 2"]
    assert count(context, "sync_events") == count(context, "attendance_events") == 0


def test_an_id_stored_with_other_content_is_named_with_its_line(context: AppContext, tmp_path: Path) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    first = tmp_path / "first.csv"
    first.write_text(SYNC_HEADER + sync_row(1) + sync_row(2))
    ingest_sync_events(context, tenant, first)
    second = tmp_path / "second.csv"
    second.write_text(SYNC_HEADER + sync_row(3) + sync_row(2, user="bob"))
    with pytest.raises(Conflict) as refused:
        ingest_sync_events(context, tenant, second)
    assert [p.field for p in refused.value.fields] == ["line 3"] and "ev-2" in refused.value.fields[0].reason
    assert count(context, "sync_events") == 2  # ev-3 was not stored either

    event = {"client_event_id": "a1", "user_id": "u", "site_id": "s", "device_id": "d", "event_type": "check_in",
             "occurred_at": AT.isoformat()}
    (tmp_path / "a.ndjson").write_text(json.dumps(event) + "\n")
    ingest_attendance(context, tenant, tmp_path / "a.ndjson")
    (tmp_path / "b.ndjson").write_text(json.dumps({**event, "client_event_id": "a2"}) + "\n"
                                       + json.dumps({**event, "device_id": "other"}) + "\n")
    with pytest.raises(Conflict) as refused_attendance:
        ingest_attendance(context, tenant, tmp_path / "b.ndjson")
    assert [p.field for p in refused_attendance.value.fields] == ["line 2"]
    assert count(context, "attendance_events") == 1


@pytest.mark.parametrize("content", ["", SYNC_HEADER])
def test_an_empty_or_header_only_file_says_so_and_exits_non_zero(
    settings_env: dict[str, str], clean_database: object, tmp_path: Path, content: str,
) -> None:
    import os

    env = {**os.environ, **settings_env}
    subprocess.run([sys.executable, "-m", "shared.cli", "tenants", "create", "acme"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    path = tmp_path / "empty.csv"
    path.write_text(content)
    result = subprocess.run([sys.executable, "-m", "shared.cli", "ingest", "sync-events", str(path), "--tenant",
                             "acme", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "holds no rows" in result.stderr


def test_attendance_event_ids_reveal_nothing_about_volume(context: AppContext) -> None:
    from shared.fraud.intake import AttendanceEventIn
    from shared.fraud.intake_repository import store_attendance_events

    tenants = [context.tenants.create_tenant(slug, slug).tenant_id for slug in ("acme", "globex")]
    answers = []
    for n in range(4):
        event = AttendanceEventIn(client_event_id=f"e{n}", user_id="u", site_id="s", device_id="d",
                                  event_type="check_in", occurred_at=AT)
        with context.database.transaction() as tx:
            answers.append(store_attendance_events(tx, tenants[n % 2], [event])[0]["event_id"])
    assert all(uuid.UUID(a).version == 4 for a in answers) and len(set(answers)) == 4
    with context.database.transaction() as tx:
        replay = store_attendance_events(tx, tenants[0], [AttendanceEventIn(
            client_event_id="e0", user_id="u", site_id="s", device_id="d", event_type="check_in", occurred_at=AT)])
    assert replay[0]["event_id"] == answers[0]  # a replay gets the same answer
