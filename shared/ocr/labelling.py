"""The weekly labelling batch: captured, uncorrected readings chosen for uncertainty and
diversity, written to the object store as a JSON Lines manifest (`source-ref` = the photo's URI,
the form SageMaker Ground Truth and Label Studio import), and recorded so none is picked twice."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.adapters.objectstore import tenant_key
from shared.ocr.photo_keys import object_uri, photo_uri
from shared.ocr.services import OcrServices

BATCH_SIZE = 50
CANDIDATE_POOL = 5000
# Each earlier pick sharing a stratum (source type, source, confidence bucket, first reason)
# halves a candidate's worth: the batch spreads over meters, gates, confidences and reasons.
DIVERSITY_DECAY = 0.5


def uncertainty(probability: float | None) -> float:
    """Binary entropy of the error probability, in bits: 1 at 0.5, 0 when the model is sure."""
    p = min(max(probability if probability is not None else 0.5, 1e-9), 1 - 1e-9)
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def strata(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    reasons = list(row["reasons"] or [])
    return (("type", row["source_type"]), ("source", f"{row['source_type']}:{row['source_id']}"),
            ("confidence", str(min(int(float(row["confidence"]) * 5), 4))), ("reason", reasons[0] if reasons else "-"))


def choose(candidates: Sequence[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Greedy: the most uncertain candidate, discounted by how often its strata were picked."""
    remaining = sorted(candidates, key=lambda r: str(r["reading_id"]))
    picked: list[dict[str, Any]] = []
    seen: Counter[tuple[str, str]] = Counter()
    while remaining and len(picked) < size:
        def worth(row: dict[str, Any]) -> float:
            return (uncertainty(row["error_probability"]) + 1e-6) * DIVERSITY_DECAY ** sum(seen[s] for s in strata(row))

        best = max(range(len(remaining)), key=lambda i: worth(remaining[i]))
        row = remaining.pop(best)
        picked.append(row)
        seen.update(strata(row))
    return picked


def manifest_line(row: dict[str, Any], rank: int, store_url: str, tenant_id: str) -> dict[str, Any]:
    line: dict[str, Any] = {}
    photo = photo_uri(store_url, tenant_id, row["image_key"]) if row["image_key"] else None
    if photo is not None:
        line["source-ref"] = photo
    else:
        line["source"] = row["ocr_text"]  # no photo (or none the tenant may show): the labeller sees the text
    line.update({
        "reading-id": str(row["reading_id"]), "client-reading-id": row["client_reading_id"],
        "source-type": row["source_type"], "source-id": row["source_id"], "ocr-text": row["ocr_text"],
        "normalized": row["normalized"], "confidence": row["confidence"],
        "error-probability": row["error_probability"], "reasons": list(row["reasons"] or []),
        "captured-at": row["captured_at"].isoformat(), "rank": rank,
    })
    return line


def select_batch(services: OcrServices, tenant_id: str, size: int = BATCH_SIZE,
                 now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    batch_id = uuid.uuid4().hex
    with services.transactions.transaction() as tx:
        services.labelling.lock_selection(tx, tenant_id)  # else two at once pick the same readings
        picked = choose(services.labelling.candidates(tx, tenant_id, CANDIDATE_POOL), size)
        if not picked:
            return {"batch_id": None, "selected": 0, "manifest_key": None}
        key = tenant_key(tenant_id, "ocr", "labelling", f"{now:%Y-%m-%d}-{batch_id}.jsonl")
        services.labelling.record(tx, tenant_id, str(uuid.UUID(batch_id)), key, [str(r["reading_id"]) for r in picked])
        body = "".join(json.dumps(manifest_line(row, rank, services.store_url, tenant_id)) + "\n"
                       for rank, row in enumerate(picked, start=1))
        # Written before the commit: a failed write rolls the selection back; a failed commit
        # leaves an unrecorded manifest, which is harmless.
        services.store.put(key, body.encode())
    return {"batch_id": str(uuid.UUID(batch_id)), "selected": len(picked), "manifest_key": key,
            "manifest_uri": object_uri(services.store_url, key)}


def select_batches_for_all(services: OcrServices, size: int = BATCH_SIZE) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        tenants = services.labelling.tenants_with_candidates(tx)
    return {"batches": [{"tenant_id": t, **select_batch(services, t, size)} for t in tenants]}
