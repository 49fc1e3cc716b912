"""Reading a text file line by line inside DuckDB, keeping every line accounted for.

``read_csv`` with a delimiter that valid JSON never contains raw (``\\x01``) and no quoting
turns each line into one VARCHAR value, streamed and parallel. Lines that are not UTF-8 are
caught by ``store_rejects`` and come back as quarantine entries with their line numbers;
the numbering of the other lines is corrected for them with an ASOF join.
"""

from __future__ import annotations

from failkit.ingest.base import Staging

_REJECTS = "fk_line_rejects"
_SCAN = "fk_line_reject_scans"


def stage_lines(stage: Staging, view: str) -> None:
    """Create temp table ``view(line_no BIGINT, line VARCHAR)`` of the file's non-empty lines.

    Lines that are not valid UTF-8 go to ``stage_quarantine``.
    """
    con = stage.con
    con.execute(f"DROP TABLE IF EXISTS temp.{_REJECTS}")
    con.execute(f"DROP TABLE IF EXISTS temp.{_SCAN}")
    compression = "gzip" if stage.compressed else "none"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {view}_raw AS
        SELECT row_number() OVER () AS n, line
        FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '', escape = '',
                      header = false, auto_detect = false, strict_mode = false,
                      compression = '{compression}', store_rejects = true,
                      rejects_table = '{_REJECTS}', rejects_scan = '{_SCAN}',
                      max_line_size = 268435456)
        """,
        [str(stage.path)],
    )
    con.execute(
        f"""
        INSERT INTO stage_quarantine
        SELECT 'line ' || line, 'line is not valid UTF-8 text: re-export the file as UTF-8',
               left(csv_line, 2000)
        FROM {_REJECTS}
        """
    )
    # accepted row n sits at line n + (number of rejected lines before it)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {view} AS
        WITH rj AS (
            SELECT line - row_number() OVER (ORDER BY line) AS k,
                   row_number() OVER (ORDER BY line) AS skipped
            FROM (SELECT DISTINCT line FROM {_REJECTS})
        )
        SELECT r.n + coalesce(rj.skipped, 0) AS line_no, r.line
        FROM {view}_raw r ASOF LEFT JOIN rj ON r.n > rj.k
        WHERE r.line IS NOT NULL AND trim(r.line) <> ''
        """
    )
    con.execute(f"DROP TABLE temp.{view}_raw")
    con.execute(f"DROP TABLE IF EXISTS temp.{_REJECTS}")
    con.execute(f"DROP TABLE IF EXISTS temp.{_SCAN}")
