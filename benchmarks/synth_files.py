"""Synthetic trace files for the ingest benchmarks, written once under ``benchmarks/out`` and
reused (delete the directory after changing ``failkit.synth``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def synth_file(name: str, fmt: str, runs: int, **sample_options: Any) -> tuple[Path, int]:
    """``failkit.synth.sample(runs, **sample_options)`` written in format ``fmt`` (a key of
    ``FILE_NAMES``) under ``out/<name>``, and its number of spans."""
    from failkit.synth import FILE_NAMES, sample

    path = OUT / name / FILE_NAMES[fmt]
    meta = path.with_suffix(".meta.json")
    if not path.exists():
        result = sample(runs, **sample_options)
        result.write(path.parent, formats=(fmt,))
        meta.write_text(json.dumps({"spans": int(result.n_spans)}))
    return path, int(json.loads(meta.read_text())["spans"])
