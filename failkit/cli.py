"""The ``failkit`` command: load traces, make synthetic ones, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from failkit.errors import FailkitError

app = typer.Typer(
    help="Find out why AI agents fail and which design change would fix it.",
    no_args_is_help=True,
    add_completion=False,
)

DEFAULT_DB = Path("data/demo.duckdb")
SAMPLE_DIR = Path("data/sample")


def _fail(exc: FailkitError) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(2)


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, directories or globs to load.")],
    db: Annotated[Path, typer.Option(help="DuckDB file to load into.")] = DEFAULT_DB,
    format: Annotated[str, typer.Option(help="'auto' or a format name.")] = "auto",
    labels: Annotated[Path | None, typer.Option(help="CSV of verdicts to add.")] = None,
) -> None:
    """Load trace files into a failkit store."""
    import failkit as fk

    try:
        with fk.connect(db) as store:
            report = store.ingest(paths, format=format)
            typer.echo(str(report))
            if labels is not None:
                typer.echo(f"labels: {store.add_labels(labels)}")
            if report.rows_quarantined:
                typer.echo(f"see the reasons with: select * from quarantine  (in {db})")
    except FailkitError as exc:
        _fail(exc)


def _write_sample(out: Path, runs: int, seed: int, gzip: bool) -> dict[str, Path]:
    from failkit.synth import write_sample

    paths = write_sample(out, n_runs=runs, seed=seed)
    if gzip:
        import gzip as gz
        import shutil

        for kind in ("otlp", "jsonl"):
            plain = paths[kind]
            packed = plain.with_name(plain.name + ".gz")
            with open(plain, "rb") as src, gz.GzipFile(packed, "wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst)
            plain.unlink()
            paths[kind] = packed
    return paths


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write into.")] = SAMPLE_DIR,
    runs: Annotated[int, typer.Option(help="Number of runs.")] = 1500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    gzip: Annotated[bool, typer.Option(help="Gzip the trace files.")] = True,
) -> None:
    """Write a synthetic agent's traces (OTLP, failkit JSONL, labels, ground truth)."""
    for kind, path in _write_sample(out, runs, seed, gzip).items():
        typer.echo(f"{kind:>15}: {path}")


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="DuckDB file to create.")] = DEFAULT_DB,
    sample: Annotated[Path, typer.Option(help="Sample directory (made when absent).")] = SAMPLE_DIR,
) -> None:
    """Synthesize (or reuse) the sample, load it into DuckDB and summarize the failures."""
    import failkit as fk
    from failkit.synth import FILE_NAMES

    otlp = sample / (FILE_NAMES["otlp"] + ".gz")
    labels = sample / FILE_NAMES["labels"]
    if not (otlp.exists() and labels.exists()):
        typer.echo(f"writing the synthetic sample to {sample} …")
        _write_sample(sample, 1500, 0, gzip=True)
    try:
        with fk.connect(db) as store:
            typer.echo(f"load: {store.ingest(otlp)}")
            typer.echo(f"labels: {store.add_labels(labels)}")
            typer.echo("")
            typer.echo(fk.summary(store))
    except FailkitError as exc:
        _fail(exc)
    typer.echo(f"\nstore: {db}   next: make lab  (notebooks/01_quickstart.ipynb)")


@app.command()
def report(
    db: Annotated[Path, typer.Option(help="DuckDB file to report on.")] = DEFAULT_DB,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    notebook: Annotated[
        Path | None, typer.Option(help="Report notebook (default: the failure report).")
    ] = None,
    show_code: Annotated[bool, typer.Option(help="Keep the notebook's code in the HTML.")] = False,
) -> None:
    """Run a report notebook on a database and write one self-contained HTML file."""
    from failkit.report import render_report

    try:
        path = render_report(db, out, notebook=notebook, show_code=show_code)
    except FailkitError as exc:
        _fail(exc)
    typer.echo(f"report: {path}")


def main() -> None:  # pragma: no cover - console entry point
    app()
