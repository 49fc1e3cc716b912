"""The design and stage reliability on Spark: order statistics by rank, partial aggregates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from spark_fixtures import spark  # noqa: F401  (the fixture)

import failkit as fk
from failkit.design import Dist
from failkit.estimate import OVERHEAD_LATENCY, PARTIAL_COLUMNS, Law, LocalSamples, settle_waits

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)

REL = 1e-9
"""Tolerance of Spark's numbers against the local ones: a law's group means sum their values
in another order (seen: 1e-15 relative); counts, quantiles and medians are exact."""


def assert_close(a: Any, b: Any, *, rel: float = REL, path: str = "") -> None:
    """Two nested structures (a model's ``model_dump()``) equal, floats to ``rel``."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], rel=rel, path=f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, rel=rel, path=f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-15) or (
            math.isnan(a) and math.isnan(b)
        ), f"{path}: {a} != {b}"
    else:
        assert a == b, path


def _rows(laws: dict[Law, np.ndarray]) -> pd.DataFrame:
    """Sample rows of :func:`failkit.estimate.design_partials` for these laws' values."""
    keys = {"part": "sample", "key": "", "key2": ""}
    frames = [
        pd.DataFrame({"value": values}).assign(
            **keys, stage=law.stage, round=law.round, item=law.item, name=law.name
        )[PARTIAL_COLUMNS]
        for law, values in laws.items()
    ]
    return pd.concat(frames, ignore_index=True).astype({"round": "int64", "item": "int64"})


def test_laws_by_rank_are_dist_from_sample(spark):  # noqa: F811
    """Spark's ranked groups give :meth:`Dist.from_sample` of the values and the zeros."""
    from failkit.spark.aggregates import PARTIAL_TYPES, SparkSamples
    from failkit.spark.frames import to_arrow

    rng = np.random.default_rng(0)
    laws = {
        Law("a", "tool_execution", 2, 0, zeros=0): rng.lognormal(size=5000),
        Law("a", "tool_execution", 2, 1, zeros=0): rng.lognormal(size=130),  # another item
        Law("b", zeros=700): np.round(rng.exponential(size=3000), 1),  # ties, many zeros
        Law("c", zeros=3): rng.choice([0.0, 0.5, 2.0, 7.0], size=400),  # 4 values: kept as is
        Law("d", zeros=10): np.concatenate([np.zeros(50), rng.random(77), [np.nan] * 5]),
        Law("e", zeros=64 * 3 + 5): rng.random(64 * 2),  # zeros span whole groups
        Law("f", zeros=0): rng.random(65),  # one value more than the groups
    }
    rows = _rows(laws)
    wanted = [*laws, Law("only zeros", zeros=9)]
    samples = SparkSamples(spark.createDataFrame(to_arrow(rows, PARTIAL_TYPES)))
    got = samples.dists(wanted, backoff={})
    for law, dist in zip(wanted, got, strict=True):
        values = laws.get(law, np.empty(0))
        expected = Dist.from_sample(np.concatenate([values, np.zeros(law.zeros)]))
        assert_close(dist.model_dump(), expected.model_dump(), path=law.name)
    assert got[2] != Dist.from_sample(laws[Law("b", zeros=700)])  # the zeros count
    local = LocalSamples(rows).dists(wanted, backoff={})
    assert [d.model_dump() for d in local] == [
        Dist.from_sample(np.concatenate([laws.get(w, np.empty(0)), np.zeros(w.zeros)])).model_dump()
        for w in wanted
    ]


def test_median_and_settled_waits_match_pandas(spark):  # noqa: F811
    from failkit.spark.aggregates import PARTIAL_TYPES, SparkSamples
    from failkit.spark.frames import to_arrow

    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 1000):
        gaps = rng.normal(size=n)
        rows = _rows({Law("gap"): gaps})
        sb = SparkSamples(spark.createDataFrame(to_arrow(rows, PARTIAL_TYPES)))
        assert sb.median("gap") == pd.Series(gaps).median()
        assert math.isnan(sb.median("nothing"))
    pending = pd.DataFrame(
        {
            "part": "pending",
            "stage": ["", "tool_execution", "tool_execution", "", "planning", ""],
            "round": 0, "item": 0, "key": ["r1", "r1", "r1", "r2", "r2", "r3"], "key2": "",
            "name": OVERHEAD_LATENCY, "value": [10.0, 1.0, 2.0, 1.0, 1.0, np.nan],
        }
    )  # fmt: skip
    backoff = {"tool_execution": 2.0}
    settled = settle_waits(pending, backoff)
    assert settled.to_dict() == {"r1": 4.0, "r2": 1.0, "r3": 0.0}  # planning has no backoff
    sb = SparkSamples(spark.createDataFrame(to_arrow(pending, PARTIAL_TYPES)))
    assert sb.dists([Law(OVERHEAD_LATENCY)], backoff) == [Dist.from_sample(settled)]


def test_quantiles_by_rank_are_pandas_quantiles(spark):  # noqa: F811
    from failkit.spark.aggregates import quantiles

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "k": rng.choice(["a", "b", "c"], size=2001),
            "v": np.where(rng.random(2001) < 0.1, np.nan, rng.lognormal(size=2001)),
        }
    )
    frame.loc[frame["k"].eq("c"), "v"] = np.nan  # no value: absent
    got = quantiles(spark.createDataFrame(frame), ["k"], "v", [0.5, 0.95], None)
    expected = frame.groupby("k")["v"].quantile([0.5, 0.95]).unstack().dropna().reset_index()
    pd.testing.assert_frame_equal(
        got.sort_values("k", ignore_index=True), expected, check_names=False, check_exact=True
    )


def _lake(tmp_path, copies: int) -> Any:
    """The synthetic sample, ``copies`` times with fresh trace ids, as a lake."""
    store = fk.connect()
    store.ingest(REPO / "data" / "sample" / "traces.jsonl.gz")
    store.add_labels(REPO / "data" / "sample" / "labels.csv")
    if copies > 1:
        for table in ("spans", "traces", "labels"):  # fixed table names
            store.con.execute(
                f"INSERT INTO {table} SELECT * EXCLUDE (k) "
                f"REPLACE (trace_id || '-' || k AS trace_id) FROM {table}, range(1, ?) r(k)",
                [copies],
            )
    store.export_parquet(tmp_path / f"lake{copies}")
    return store, tmp_path / f"lake{copies}"


def test_design_collects_aggregates_only(spark, tmp_path):  # noqa: F811
    """Twice the runs: the design and reliability send the driver no more rows (the same
    partitions), and the design is the local one."""
    from failkit.spark import SparkBackend

    seen = {}
    for copies in (1, 2):
        store, lake = _lake(tmp_path, copies)
        sb = SparkBackend(spark, lake)
        st = sb.steps()
        collected: list[dict] = []
        spread = "fit" if copies == 1 else 0.0  # (the fit collects nothing more)
        design = sb.design(st, task_spread=spread, collected=collected)
        local = fk.Design.from_store(store, task_spread=spread)
        assert_close(design.model_dump(), local.model_dump())
        sb.stage_reliability(st, collected=collected)
        seen[copies] = collected
    assert [c["what"] for c in seen[1]] == [c["what"] for c in seen[2]]
    for small, big in zip(seen[1], seen[2], strict=True):
        assert big["rows"] <= small["rows"] * 1.05 + 1, (small, big)  # + 1: a median of 2
