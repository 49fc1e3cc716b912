"""Reading a text file line by line inside DuckDB, keeping every line accounted for.

``read_csv`` with a delimiter that valid JSON never contains raw (``\\x01``) and no quoting
turns each line into one VARCHAR value, streamed and parallel. Lines that are not UTF-8 are
caught by ``store_rejects`` and come back as quarantine entries with their line numbers; the
numbering of the other lines is then corrected for them (only when there are any).
"""

from __future__ import annotations

import numpy as np

from failkit.ingest.base import Staging

SCAN_BYTES = 1 << 20
"""Bytes compared at a time when looking for newlines with numpy: comparing a whole block
would fault in a block-sized temporary each time (4-5x slower)."""
MAX_LINE_BYTES = 268_435_456
"""Longest line read as one record (256 MiB); longer lines are quarantined."""
_REJECTS = "fk_line_rejects"
_SCAN = "fk_line_reject_scans"


def count_lines(stage: Staging) -> tuple[int, bool]:
    """(lines in the file, whether one is longer than :data:`MAX_LINE_BYTES`), in Python.

    Blank lines count, and so does a last line without a newline. Streams the file in
    chunks no longer than the limit, so a line over it always spans chunks and is seen by
    the distance between newlines across them. (DuckDB's CSV reader would hold buffers the
    size of the limit per thread just to count.)
    """
    size = min(1 << 24, MAX_LINE_BYTES)
    n, since, too_long = 0, 0, False  # since: bytes after the last newline seen
    with stage.open() as f:
        while chunk := f.read(size):
            first = chunk.find(b"\n")
            if first < 0:
                since += len(chunk)
            else:
                too_long |= since + first > MAX_LINE_BYTES
                n += count_newlines(chunk)
                since = len(chunk) - chunk.rfind(b"\n") - 1
            too_long |= since > MAX_LINE_BYTES
    return n + (since > 0), too_long


def count_newlines(data: bytes | bytearray | memoryview, end: int | None = None) -> int:
    """The newlines in ``data[:end]``, counted a slice at a time (3-4x faster than
    ``bytes.count``)."""
    text = np.frombuffer(data, np.uint8, len(data) if end is None else end)
    return sum(
        int(np.count_nonzero(text[at : at + SCAN_BYTES] == 10))
        for at in range(0, len(text), SCAN_BYTES)
    )


def stage_lines(stage: Staging, table: str, extra: str = "") -> None:
    """Create temp table ``table(line_no, line[, extra...])`` of the file's non-empty lines.

    Args:
        stage: the load.
        table: name of the temp table to create.
        extra: more SELECT expressions over ``line`` (e.g. ``"json_valid(line) AS ok"``),
            computed in the same pass.

    Lines that are not valid UTF-8 go to ``stage_quarantine``.
    """
    con = stage.con
    for t in (_REJECTS, _SCAN):
        con.execute(f"DROP TABLE IF EXISTS temp.{t}")
    compression = "gzip" if stage.compressed else "none"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT line_no, line{", " + extra if extra else ""}
        FROM (
            SELECT row_number() OVER () AS line_no, line
            FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '',
                          escape = '', header = false, auto_detect = false, strict_mode = false,
                          compression = '{compression}', store_rejects = true,
                          rejects_table = '{_REJECTS}', rejects_scan = '{_SCAN}',
                          max_line_size = {MAX_LINE_BYTES})
        )
        WHERE line IS NOT NULL AND trim(line) <> ''
        """,
        [stage.scan_path],
    )
    n_rejects = con.execute(f"SELECT count(DISTINCT line) FROM {_REJECTS}").fetchall()[0][0]
    if n_rejects:
        con.execute(
            f"""
            INSERT INTO stage_quarantine
            SELECT 'line ' || line,
                   CASE min(error_type::VARCHAR)
                       WHEN 'INVALID ENCODING'
                           THEN 'line is not valid UTF-8 text: re-export the file as UTF-8'
                       WHEN 'LINE SIZE OVER MAXIMUM'
                           THEN 'line is longer than {MAX_LINE_BYTES:,} bytes, the most '
                                || 'failkit reads as one record: split the record or shorten '
                                || 'its values'
                       ELSE 'line cannot be read (' || min(error_message) || ')'
                   END,
                   left(min(csv_line), 2000)
            FROM {_REJECTS} GROUP BY line ORDER BY line
            """
        )
        # accepted row n sits at line n + (number of rejected lines before it)
        con.execute(
            f"""
            UPDATE {table} SET line_no = {table}.line_no + fix.skipped
            FROM (
                SELECT r.line_no, rj.skipped
                FROM {table} r ASOF JOIN (
                    SELECT line - row_number() OVER (ORDER BY line) AS k,
                           row_number() OVER (ORDER BY line) AS skipped
                    FROM (SELECT DISTINCT line FROM {_REJECTS})
                ) rj ON r.line_no > rj.k
            ) fix
            WHERE {table}.line_no = fix.line_no
            """
        )
    for t in (_REJECTS, _SCAN):
        con.execute(f"DROP TABLE IF EXISTS temp.{t}")
