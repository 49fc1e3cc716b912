"""Verdicts from a CSV file or a DataFrame (``TraceStore.add_labels``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

import duckdb
import pandas as pd

from failkit.errors import FailkitError
from failkit.ingest.base import Staging
from failkit.schema import LABEL_COLUMNS

REQUIRED = ("trace_id", "name", "value")
OPTIONAL = ("span_id", "score", "source", "comment")


def check_label_columns(columns: list[str], *, where: str) -> None:
    """Raise a FailkitError naming missing or unknown label columns."""
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise FailkitError(
            f"{where}: {'; '.join(parts)}. Labels need {', '.join(REQUIRED)} and may have "
            f"{', '.join(OPTIONAL)}."
        )


def _label_select(source: str) -> str:
    cols = [c.name for c in LABEL_COLUMNS if c.name != "ingest_id"]
    exprs = {
        "trace_id": "nullif(lower(trim(trace_id::VARCHAR)), '')",
        "span_id": "nullif(lower(trim(span_id::VARCHAR)), '')",
        "score": "try_cast(score AS DOUBLE)",
    }
    return ", ".join(f"{exprs.get(c, f'{c}::VARCHAR')} AS {c}" for c in cols)


def _stage(stage: Staging, relation: str, present: list[str]) -> None:
    """Stage labels from a relation with the given columns (absent optional ones are NULL)."""
    fill = ", ".join(f"NULL AS {c}" for c in OPTIONAL if c not in present)
    base = f"SELECT *{', ' + fill if fill else ''}, row_number() OVER () AS _n FROM {relation}"
    stage.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fk_label_rows AS
        SELECT {_label_select("")}, _n,
               CASE WHEN score IS NOT NULL AND try_cast(score AS DOUBLE) IS NULL
                    THEN 'score ' || score::VARCHAR || ' is not a number' END AS problem
        FROM ({base})
        """
    )
    stage.con.execute(
        """
        INSERT INTO stage_quarantine
        SELECT 'row ' || _n, problem || ': fix or leave the score empty',
               left(to_json(fk_label_rows)::VARCHAR, 2000)
        FROM fk_label_rows WHERE problem IS NOT NULL
        """
    )
    stage.con.execute(
        """
        INSERT INTO stage_labels
        SELECT trace_id, span_id, name, value, score, source, comment, 'row ' || _n
        FROM fk_label_rows WHERE problem IS NULL
        """
    )
    stage.con.execute("DROP TABLE temp.fk_label_rows")


def stage_label_frame(stage: Staging, frame: pd.DataFrame) -> None:
    """Stage the rows of a labels DataFrame."""
    stage.con.register("fk_label_frame", frame.astype("object").where(frame.notna(), None))
    try:
        _stage(stage, "fk_label_frame", list(frame.columns))
    finally:
        stage.con.unregister("fk_label_frame")


class LabelsCsvAdapter:
    """A CSV of verdicts (only used when asked for: ``add_labels`` or ``format='labels_csv'``)."""

    name: ClassVar[str] = "labels_csv"
    description: ClassVar[str] = (
        "CSV of verdicts: trace_id,name,value[,span_id,score,source,comment]"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lower()
        cols = [c.strip() for c in first.split(",")]
        return all(c in cols for c in REQUIRED) and set(cols) <= set(REQUIRED + OPTIONAL)

    def load(self, stage: Staging) -> None:
        con = stage.con
        columns = _header(stage)
        check_label_columns(columns, where=str(stage.path))
        if len(set(columns)) < len(columns):
            raise FailkitError(f"{stage.path}: a column name appears twice in the header")
        # names are checked against the fixed label columns above: safe to write into SQL
        types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
        compression = "gzip" if stage.compressed else "none"
        try:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE fk_label_csv AS
                SELECT * FROM read_csv(?, columns = {types}, header = true, auto_detect = false,
                                       delim = ',', quote = '"', escape = '"',
                                       compression = '{compression}', store_rejects = true,
                                       rejects_table = 'fk_label_rejects',
                                       rejects_scan = 'fk_label_reject_scans')
                """,
                [stage.scan_path],
            )
        except duckdb.Error as exc:
            raise FailkitError(
                f"{stage.path}: cannot read the labels CSV ({str(exc).splitlines()[0]})"
            ) from exc
        con.execute(
            """
            INSERT INTO stage_quarantine
            SELECT 'line ' || line,
                   'CSV row cannot be read (' || string_agg(DISTINCT error_message, '; ')
                   || '): fix the quoting or the number of fields',
                   left(first(csv_line), 2000)
            FROM fk_label_rejects GROUP BY line ORDER BY line
            """
        )
        try:
            _stage(stage, "fk_label_csv", columns)
        finally:
            for table in ("fk_label_csv", "fk_label_rejects", "fk_label_reject_scans"):
                con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _header(stage: Staging) -> list[str]:
    """Column names from the first line of a CSV file."""
    with stage.open() as f:
        first = f.readline(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = first.splitlines()
    try:
        return [c.strip() for c in next(csv.reader(lines[:1]), [])]
    except csv.Error as exc:
        raise FailkitError(f"{stage.path}: the CSV header cannot be read ({exc})") from exc
