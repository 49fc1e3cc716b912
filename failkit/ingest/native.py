"""failkit's own JSONL: one span, run or label record per line (see README "failkit JSONL").

Loaded entirely in DuckDB, in one of two ways:

- **fast**: DuckDB's parallel ``read_json`` with the schema's column types, strict. It
  succeeds only on a clean file (every line a valid record of the right types, no blank
  lines, so that row numbers are line numbers);
- **careful**, when the fast read refuses the file: lines are read by :func:`stage_lines`;
  each line is transformed twice with ``json_transform`` — into the schema's types and into
  raw JSON values — and a field whose raw value is present but whose typed value is NULL has
  the wrong type. A line with a problem goes to quarantine with the first problem found.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import duckdb

from failkit.ingest.base import STAGE_TABLES, Staging, create_stage_tables, duckdb_settings
from failkit.ingest.lines import MAX_LINE_BYTES, count_lines, stage_lines
from failkit.schema import Column

_RECORD_TYPES = {"span": "stage_spans", "trace": "stage_traces", "label": "stage_labels"}
_DERIVED = {"duration_s", "position"}
_TYPED = {"VARCHAR": "VARCHAR", "JSON": "JSON", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
          "TIMESTAMP": "TIMESTAMPTZ"}  # fmt: skip
_IDS = {"trace_id", "span_id", "parent_id"}
_SHAPES = {"attributes": ("OBJECT", "an object"), "events": ("ARRAY", "an array")}
_WHAT = {"VARCHAR": "a string", "BIGINT": "an integer", "DOUBLE": "a number"}
_DEFAULTS = {"kind": "'other'", "status": "'unset'"}


def _fields(record_type: str) -> list[Column]:
    """The fields a record of this type carries (a span's ``source`` is the format)."""
    derived = _DERIVED | ({"source"} if record_type == "span" else set())
    return [c for c in STAGE_TABLES[_RECORD_TYPES[record_type]] if c.name not in derived]


def _struct(fields: list[Column], *, typed: bool) -> str:
    types = {c.name: (_TYPED[c.sql_type] if typed else "JSON") for c in fields}
    if typed:
        types.update({name: "JSON" for name in _IDS | set(_SHAPES) if name in types})
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in types.items()) + "}"


def _field_sql(col: Column) -> tuple[str, str | None]:
    """(value, problem-or-None) of one field from typed ``t`` and raw ``r`` structs."""
    name, typed, raw = col.name, f"t.{col.name}", f"r.{col.name}"
    if name in _IDS:
        ok = f"json_type({raw}) IN ('VARCHAR', 'BIGINT', 'UBIGINT')"
        return (
            f"CASE WHEN {ok} THEN nullif(lower(trim({raw}->>'$')), '') END",
            f"CASE WHEN {raw} IS NOT NULL AND NOT {ok} "
            f"THEN 'field {name} should be a string, got ' || lower(json_type({raw})) END",
        )
    if name in _SHAPES:
        want, what = _SHAPES[name]
        return (
            typed,
            f"CASE WHEN {raw} IS NOT NULL AND json_type({raw}) <> '{want}' "
            f"THEN 'field {name} should be {what}, got ' || lower(json_type({raw})) END",
        )
    if col.sql_type == "JSON":  # a string holding JSON counts as that JSON
        return (
            f"CASE WHEN json_type({raw}) = 'VARCHAR' AND json_valid({raw}->>'$') "
            f"THEN ({raw}->>'$')::JSON ELSE {raw} END",
            None,
        )
    if col.sql_type == "TIMESTAMP":
        value = (
            f"coalesce({typed}::TIMESTAMP, make_timestamp(try_cast("
            f"try_cast({raw}::VARCHAR AS DOUBLE) * 1e6 AS BIGINT)))"
        )
        return value, (
            f"CASE WHEN {raw} IS NOT NULL AND {value} IS NULL THEN 'field {name} should be an "
            f"ISO 8601 time (2026-01-01T00:00:00Z) or epoch seconds, got ' || left({raw}, 40) END"
        )
    value = f"lower({typed})" if name in _DEFAULTS else typed
    if name in _DEFAULTS:
        value = f"coalesce({value}, {_DEFAULTS[name]})"
    return value, (
        f"CASE WHEN {raw} IS NOT NULL AND {typed} IS NULL "
        f"THEN 'field {name} should be {_WHAT[col.sql_type]}, got ' || left({raw}, 40) END"
    )


def _rows_sql(record_type: str) -> str:
    """SELECT turning ``fk_lines`` of one record type into staged columns plus ``problem``."""
    fields = _fields(record_type)
    values, problems = [], []
    for col in fields:
        value, problem = _field_sql(col)
        values.append(f"{value} AS {col.name}")
        if problem:
            problems.append(problem)
    return f"""
        SELECT {", ".join(values)}, coalesce({", ".join(problems)}) AS problem, line_no, line
        FROM (
            SELECT line_no, line,
                   json_transform(line, '{_struct(fields, typed=True)}') AS t,
                   json_transform(line, '{_struct(fields, typed=False)}') AS r
            FROM fk_lines WHERE rtype = ?
        )
    """


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
        return (
            b'"trace_id"' in first
            and (b'"type": "' in first or b'"type":"' in first or b'"span_id"' in first)
            and b'"object"' not in first
            and b'"run_type"' not in first
        )

    def load(self, stage: Staging) -> None:
        if not _load_fast(stage):
            _load_careful(stage)


def _all_fields() -> dict[str, str]:
    """Every field of every record type with its DuckDB type for ``read_json``."""
    types = {"type": "VARCHAR"}
    for rtype in _RECORD_TYPES:
        for col in _fields(rtype):
            types.setdefault(col.name, _TYPED[col.sql_type])
    return types


def _load_fast(stage: Staging) -> bool:
    """Stage a clean file with one strict typed ``read_json``; False when it is not clean.

    The parsed rows land in ``stage_spans`` directly, with the fields of the other record
    types as extra columns; the few run and label rows are then moved to their tables. So
    the file is held once, not parsed into one table and copied into another.
    """
    con = stage.con
    compression = "gzip" if stage.compressed else "none"
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in _all_fields().items()) + "}"
    extra = {c.name for t in ("stage_traces", "stage_labels") for c in STAGE_TABLES[t]}
    extra -= {c.name for c in STAGE_TABLES["stage_spans"]}
    with ThreadPoolExecutor(1) as pool:  # the lines are counted while DuckDB parses
        lines = pool.submit(count_lines, stage)
        try:
            # rows in the order of the lines, read in parallel; their positions are set once
            # the rows are known to be the lines (row_number() OVER () reads in one thread)
            with duckdb_settings(con, {"preserve_insertion_order": "true"}):
                con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE stage_spans AS
                    SELECT {_stage_select("stage_spans", _FAST_CONVERTED)},
                           coalesce(lower(type), 'span') AS fk_type, source AS fk_source,
                           {", ".join(sorted(extra))}
                    FROM read_json(?, format = 'newline_delimited', columns = {columns},
                                   compression = '{compression}',
                                   maximum_object_size = {MAX_LINE_BYTES})
                    """,
                    [stage.scan_path],
                )
        except (duckdb.Error, UnicodeDecodeError):  # DuckDB may cut a UTF-8 char in its message
            create_stage_tables(con, ["stage_spans"])
            return False
        n_rows, n_odd, n_other = con.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE fk_type NOT IN ('span', 'trace', 'label')
                       OR json_type(attributes) <> 'OBJECT' OR json_type(events) <> 'ARRAY'),
                   count(*) FILTER (WHERE fk_type <> 'span')
            FROM stage_spans
            """
        ).fetchall()[0]
        n_lines, too_long = lines.result()
        if n_odd or too_long or n_rows != n_lines:
            create_stage_tables(con, ["stage_spans"])
            return False
    con.execute("UPDATE stage_spans SET position = 'line ' || (rowid + 1)")
    if n_other:
        for rtype in ("trace", "label"):
            table = _RECORD_TYPES[rtype]
            picked = ", ".join(
                "fk_source" if c.name == "source" else c.name for c in STAGE_TABLES[table]
            )
            con.execute(
                f"INSERT INTO {table} SELECT {picked} FROM stage_spans WHERE fk_type = ?",
                [rtype],
            )
        con.execute("DELETE FROM stage_spans WHERE fk_type <> 'span'")
    return True


_FAST_CONVERTED = {
    "kind": "coalesce(lower(kind), 'other')",
    "status": "coalesce(lower(status), 'unset')",
    "tool_args": "CASE WHEN json_type(tool_args) = 'VARCHAR' AND json_valid(tool_args->>'$') "
    "THEN (tool_args->>'$')::JSON ELSE tool_args END",
    "start_time": "start_time::TIMESTAMP",
    "end_time": "end_time::TIMESTAMP",
    "position": "NULL::VARCHAR",
    **{i: f"nullif(lower(trim({i})), '')" for i in _IDS},
}
"""How the typed ``read_json`` columns become staged values (the fast path)."""


def _load_careful(stage: Staging) -> None:
    """Stage a file line by line, quarantining each bad line with its reason."""
    con = stage.con
    stage_lines(
        stage,
        "fk_lines",
        extra="""CASE WHEN NOT json_valid(line) THEN 'invalid'
                      WHEN json_type(line) <> 'OBJECT' THEN 'not_object'
                      ELSE coalesce(lower(line->>'$.type'), 'span') END AS rtype""",
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
        FROM fk_lines WHERE rtype NOT IN ('span', 'trace', 'label')
        ORDER BY line_no
        """
    )
    for rtype, table in _RECORD_TYPES.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE fk_rows AS {_rows_sql(rtype)}", [rtype])
        con.execute(
            """
            INSERT INTO stage_quarantine
            SELECT 'line ' || line_no, problem || ': fix the field or drop it', left(line, 2000)
            FROM fk_rows WHERE problem IS NOT NULL ORDER BY line_no
            """
        )
        con.execute(
            f"INSERT INTO {table} SELECT {_stage_select(table)} FROM fk_rows "
            "WHERE problem IS NULL ORDER BY line_no"
        )
    for t in ("fk_rows", "fk_lines"):
        con.execute(f"DROP TABLE IF EXISTS temp.{t}")


def _stage_select(table: str, converted: dict[str, str] | None = None) -> str:
    """SELECT list filling a staging table from parsed columns (plus ``line_no``)."""
    derived = {
        "duration_s": "epoch_us(end_time - start_time) / 1e6",
        "position": "'line ' || line_no",
        **(converted or {}),
    }
    if table == "stage_spans":  # a label's source is its judge, a span's is the format
        derived["source"] = "'failkit_jsonl'"
    return ", ".join(f"{derived.get(c.name, c.name)} AS {c.name}" for c in STAGE_TABLES[table])
