"""Small hand-made runs for the decision-chain tests: span rows, frames and stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

import failkit as fk

T0 = pd.Timestamp("2026-01-01")


def span(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    kind: str,
    t: float,
    *,
    duration_s: float = 1.0,
    status: str = "ok",
    **fields: Any,
) -> dict[str, Any]:
    """One span row starting ``t`` seconds after :data:`T0`."""
    start = T0 + pd.Timedelta(seconds=t)
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent_id,
        "kind": kind,
        "name": fields.pop("name", span_id),
        "start_time": start,
        "end_time": start + pd.Timedelta(seconds=duration_s),
        "duration_s": duration_s,
        "status": status,
        **fields,
    }


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    """A spans DataFrame of rows made by :func:`span`."""
    return pd.DataFrame(list(rows))


def store(
    tmp_path: Path,
    rows: list[dict[str, Any]],
    *,
    outcomes: dict[str, str] | None = None,
    labels: list[dict[str, Any]] | None = None,
) -> fk.TraceStore:
    """An in-memory store holding ``rows`` (via failkit JSONL), outcomes and labels."""
    path = tmp_path / f"spans-{len(list(tmp_path.iterdir()))}.jsonl"
    with path.open("w") as f:
        for row in rows:
            record = {k: v for k, v in row.items() if isinstance(v, dict) or not pd.isna(v)}
            for key in ("start_time", "end_time"):
                record[key] = record[key].isoformat() + "Z"
            record.pop("duration_s", None)
            f.write(json.dumps({"type": "span", **record}) + "\n")
    s = fk.connect()
    s.ingest(path, progress=False)
    verdicts = [
        {"trace_id": t, "name": "outcome", "value": v} for t, v in (outcomes or {}).items()
    ] + list(labels or [])
    if verdicts:
        s.add_labels(pd.DataFrame(verdicts))
    return s
