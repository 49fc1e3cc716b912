"""failkit's own JSONL: one span, run or label record per line (see README "JSONL format").

Loaded entirely in DuckDB: lines are read by :func:`stage_lines`, each line is parsed once
with ``json_transform`` into a struct of JSON values, and every field is type-checked and
converted by SQL generated from the schema's column types. A line with a problem goes to
quarantine with the first problem found; the rest load.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from failkit.ingest.base import STAGE_TABLES, Staging
from failkit.ingest.lines import stage_lines
from failkit.schema import Column

# Fields whose values may be any JSON (kept as text / JSON text).
_ANY_TEXT = {"input", "output", "comment", "value"}


def _convert(col: Column, ref: str) -> tuple[str, str | None]:
    """SQL for (converted value, problem-or-NULL) of one JSON field ``ref``."""
    t = f"json_type({ref})"
    name = col.name
    absent = f"({ref} IS NULL OR {t} = 'NULL')"
    bad = f"'field {name} should be {{}}, got ' || lower({t})"
    if col.sql_type == "VARCHAR" and name in _ANY_TEXT:
        return (
            f"CASE WHEN {absent} THEN NULL WHEN {t} = 'VARCHAR' THEN {ref}->>'$' "
            f"ELSE {ref}::VARCHAR END",
            None,
        )
    if col.sql_type == "VARCHAR":
        ok = f"{t} IN ('VARCHAR', 'BIGINT', 'UBIGINT')"
        return (
            f"CASE WHEN {absent} THEN NULL WHEN {ok} THEN {ref}->>'$' END",
            f"CASE WHEN NOT {absent} AND NOT {ok} THEN {bad.format('a string')} END",
        )
    if col.sql_type == "JSON":
        want = {"attributes": "OBJECT", "events": "ARRAY"}.get(name)
        value = (
            f"CASE WHEN {absent} THEN NULL WHEN {t} = 'VARCHAR' AND json_valid({ref}->>'$') "
            f"THEN ({ref}->>'$')::JSON ELSE {ref} END"
        )
        if want is None:
            return value, None
        return value, (
            f"CASE WHEN NOT {absent} AND {t} <> '{want}' "
            f"THEN {bad.format('an ' + want.lower() if want == 'OBJECT' else 'an array')} END"
        )
    if col.sql_type in ("BIGINT", "DOUBLE"):
        num = f"{t} IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
        cast = f"try_cast({ref}->>'$' AS {col.sql_type})"
        what = "an integer" if col.sql_type == "BIGINT" else "a number"
        return (
            f"CASE WHEN {absent} THEN NULL ELSE {cast} END",
            f"CASE WHEN NOT {absent} AND (NOT ({num} OR {t} = 'VARCHAR') OR {cast} IS NULL) "
            f"THEN {bad.format(what)} || ' ' || left({ref}::VARCHAR, 40) END",
        )
    if col.sql_type == "TIMESTAMP":
        value = (
            f"CASE WHEN {absent} THEN NULL "
            f"WHEN {t} = 'VARCHAR' THEN try_cast({ref}->>'$' AS TIMESTAMPTZ)::TIMESTAMP "
            f"WHEN {t} IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
            f"THEN make_timestamp(try_cast(try_cast({ref}->>'$' AS DOUBLE) * 1e6 AS BIGINT)) END"
        )
        return value, (
            f"CASE WHEN NOT {absent} AND ({value}) IS NULL THEN 'field {name} should be an ISO 8601 "
            f"time (2026-01-01T00:00:00Z) or epoch seconds, got ' || left({ref}::VARCHAR, 40) END"
        )
    raise AssertionError(f"no conversion for {col.sql_type}")  # pragma: no cover


_RECORD_TYPES = {"span": "stage_spans", "trace": "stage_traces", "label": "stage_labels"}
_DEFAULTS = {"kind": "'other'", "status": "'unset'", "source": "'failkit_jsonl'"}
_DERIVED = {"duration_s", "source", "position"}


def _record_sql(record_type: str) -> tuple[str, str]:
    """(SELECT list, problem expression) turning parsed lines of one record type into rows."""
    table = _RECORD_TYPES[record_type]
    fields = [c for c in STAGE_TABLES[table] if c.name not in _DERIVED]
    selects: list[str] = []
    problems: list[str] = []
    for col in fields:
        value, problem = _convert(col, f"r.j.{col.name}")
        if col.name in ("kind", "status"):
            value = f"coalesce(lower({value}), {_DEFAULTS[col.name]})"
        if col.name in ("trace_id", "span_id", "parent_id"):
            value = f"nullif(lower(trim({value})), '')"
        selects.append(f"{value} AS {col.name}")
        if problem:
            problems.append(problem)
    return ", ".join(selects), f"coalesce({', '.join(problems)})" if problems else "NULL"


def _struct_type(record_type: str) -> str:
    fields = [c.name for c in STAGE_TABLES[_RECORD_TYPES[record_type]] if c.name not in _DERIVED]
    return "{" + ", ".join(f'"{f}": "JSON"' for f in ["type", *fields]) + "}"


class NativeJsonlAdapter:
    """failkit JSONL: ``{"type": "span" | "trace" | "label", ...}`` per line."""

    name: ClassVar[str] = "failkit_jsonl"
    description: ClassVar[str] = (
        "failkit's own JSONL: one span, trace or label record per line (fields as in the store)"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        if not first.startswith(b"{") or b'"resourceSpans"' in first:
            return False
        return b'"trace_id"' in first and (
            b'"type": "' in first or b'"type":"' in first or b'"span_id"' in first
        ) and b'"object"' not in first and b'"run_type"' not in first

    def load(self, stage: Staging) -> None:
        con = stage.con
        stage_lines(stage, "fk_lines")
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE fk_parsed AS
            SELECT line_no, line,
                   CASE WHEN NOT json_valid(line) THEN 'invalid'
                        WHEN json_type(line) <> 'OBJECT' THEN 'not_object'
                        ELSE coalesce(lower(line->>'$.type'), 'span') END AS rtype
            FROM fk_lines
            """
        )
        con.execute(
            """
            INSERT INTO stage_quarantine
            SELECT 'line ' || line_no,
                   CASE rtype
                       WHEN 'invalid' THEN 'line is not valid JSON (cut short, a missing quote '
                            || 'or brace, or not JSON at all): fix or drop the line'
                       WHEN 'not_object' THEN 'line holds a JSON ' || lower(json_type(line))
                            || ', not an object: each line must be one {...} record'
                       ELSE 'unknown record type ' || rtype || ': use span, trace or label'
                   END,
                   left(line, 2000)
            FROM fk_parsed WHERE rtype NOT IN ('span', 'trace', 'label')
            """
        )
        for rtype, table in _RECORD_TYPES.items():
            selects, problem = _record_sql(rtype)
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE fk_rows AS
                SELECT {selects}, {problem} AS problem, r.line_no, r.line
                FROM (SELECT line_no, line, json_transform(line, '{_struct_type(rtype)}') AS j
                      FROM fk_parsed WHERE rtype = ?) r
                """,
                [rtype],
            )
            con.execute(
                """
                INSERT INTO stage_quarantine
                SELECT 'line ' || line_no, problem || ': fix the field or drop it', left(line, 2000)
                FROM fk_rows WHERE problem IS NOT NULL
                """
            )
            cols = [c.name for c in STAGE_TABLES[table]]
            extra = {
                "duration_s": "epoch_us(end_time - start_time) / 1e6",
                "source": "'failkit_jsonl'",
                "position": "'line ' || line_no",
            }
            select = ", ".join(extra.get(c, c) for c in cols)
            con.execute(
                f"INSERT INTO {table} SELECT {select} FROM fk_rows WHERE problem IS NULL "
                "ORDER BY line_no"
            )
        for t in ("fk_rows", "fk_parsed", "fk_lines"):
            con.execute(f"DROP TABLE IF EXISTS temp.{t}")
