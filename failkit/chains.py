"""Decision chains: every run as an ordered chain of steps, where it broke, and what followed.

:func:`steps` does the work in DuckDB SQL (``failkit/sql/steps.sql``); the other functions
summarise its frame and accept either a :class:`~failkit.store.TraceStore`, a spans
DataFrame (columns of ``failkit.schema.SPAN_COLUMNS``; ``trace_id`` and ``span_id`` are
required, the others optional) or the frame :func:`steps` returned.

How a run's first failure is found:

1. every failed step (``status == 'error'``) gets a stage and a cause from the rules of
   :mod:`failkit.stages`;
2. a failed step is ``recovered`` when a later step got past it: a bad call blamed on the
   LLM that wrote it (unknown tool, invalid arguments) when a later step of the same kind was
   a valid call; a tool that failed on its own (timeout, server error, …) when the same tool
   later worked; anything else (an LLM or chain error) when a later step of the same kind
   worked. Recovered errors (pydantic-ai ``ModelRetry``, retried timeouts) are not the run's
   failure;
3. a failed step is ``propagated`` when it only repeats an unrecovered error of one of its
   descendants (the same exception is recorded on every span it passes through, pitfall 6);
4. a run failed when its outcome is ``failure``, or when its outcome is unknown and it has an
   unrecovered, unpropagated error; runs whose outcome is ``success`` never failed;
5. the first failure is the earliest unrecovered, unpropagated error (the deepest, earliest
   copy of the exception). A failed run without one failed **silently**; the step is then a
   guess, named in ``heuristic``: a step a label points at (``label:<name>``, for the label
   names passed in ``label_names``), the least confident step when steps log confidence
   (``least_confident_step``), the last LLM step (``last_llm_step``), the first recovered
   error when there is no LLM step (``recovered_error``), or the last step (``last_step``).

Parent links are repaired, never trusted: a parent id that matches no span of the run makes
the span a root (``root_reason = 'missing_parent'``), and a cycle of parent ids is cut at its
earliest span, which becomes a root (``root_reason = 'parent_cycle'``); the walk always ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any, TypeAlias

import duckdb
import pandas as pd
import pyarrow as pa

from failkit.errors import FailkitError
from failkit.ingest.base import to_json_text
from failkit.schema import SPAN_COLUMNS
from failkit.stages import StageRule, check_rules, non_idempotent, rules_frame
from failkit.store import TraceStore

STEP_COLUMNS: list[str] = [
    "trace_id", "step", "span_id", "parent_id", "depth", "kind", "stage", "name", "tool_name",
    "model", "status", "error_type", "error_message", "start_time", "duration_s", "tokens_in",
    "tokens_out", "cost_usd", "attempt", "is_first_failure", "after_failure", "cause_span_id",
    "rule", "transient", "recovered", "propagated", "intent_id", "side_effect",
    "duplicate_side_effect", "heuristic", "root_reason",
]  # fmt: skip
"""Columns of :func:`steps`."""

FIRST_FAILURE_COLUMNS: list[str] = [
    "trace_id", "span_id", "cause_span_id", "step", "stage", "tool_name", "error_type",
    "error_message", "silent", "heuristic", "rule",
]  # fmt: skip
"""Columns of :func:`first_failures`."""

RETRY_COLUMNS: list[str] = [
    "trace_id", "intent_id", "kind", "tool_name", "model", "first_span_id", "last_span_id",
    "n_attempts", "n_failed", "first_error_type", "result",
]  # fmt: skip
"""Columns of :func:`retries`."""

DUPLICATE_COLUMNS: list[str] = [
    "trace_id", "intent_id", "tool_name", "first_span_id", "last_span_id", "n_calls", "n_done",
    "n_maybe", "first_status", "first_error_type", "risk",
]  # fmt: skip
"""Columns of :func:`duplicate_side_effects`."""

TRANSITION_COLUMNS: list[str] = ["from_stage", "to_stage", "n_transitions", "n_runs", "share"]
"""Columns of :func:`failure_transitions`."""

WASTE_COLUMNS: list[str] = [
    "trace_id", "first_failure_step", "n_steps", "n_steps_after", "tokens_in_after",
    "tokens_out_after", "cost_usd_after", "seconds_after", "cost_share_after",
]  # fmt: skip
"""Columns of :func:`wasted_after_failure`."""

Source: TypeAlias = TraceStore | pd.DataFrame

_FRAME_TYPES = {"JSON": "VARCHAR"}
"""JSON columns of a user's frame are read as text (dicts become JSON text first)."""

_USED_COLUMNS = tuple(
    c
    for c in SPAN_COLUMNS
    if c.name not in ("provider", "attributes", "events", "source", "ingest_id")
)
_TEXT_COLUMNS = ("tool_args", "input", "output")


def _frame_for_duckdb(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns :func:`steps` reads, with dicts and lists in text columns as JSON text."""
    used = frame[[c.name for c in _USED_COLUMNS if c.name in frame.columns]]
    fixes = {
        c: used[c].map(to_json_text, na_action="ignore")
        for c in _TEXT_COLUMNS
        if c in used.columns and used[c].dtype == object
    }
    return used.assign(**fixes) if fixes else used


_STATEMENTS: dict[str, str] = {}


def _statement(name: str) -> str:
    """One named statement of ``sql/steps.sql``."""
    if not _STATEMENTS:
        text = resources.files("failkit.sql").joinpath("steps.sql").read_text()
        for chunk in re.split(r"^-- name: ", text, flags=re.M)[1:]:
            key, _, body = chunk.partition("\n")
            _STATEMENTS[key.strip()] = body.strip().rstrip(";")
    return _STATEMENTS[name]


def _rule_case(rules: Sequence[StageRule], failure: bool, params: list[Any]) -> str:
    """A CASE giving the priority of the first matching rule (patterns bound as parameters)."""
    whens = []
    for priority, rule in enumerate(rules):
        if (rule.error is not None) != failure:
            continue
        conds = []
        for field, column in (
            ("kind", "kind"),
            ("role", "role_text"),
            ("name", "name_text"),
            ("error", "error_text"),
        ):
            pattern = getattr(rule, field)
            if pattern is not None:
                conds.append(f"regexp_matches({column}, ?, 'i')")
                params.append(pattern)
        whens.append(f"WHEN {' AND '.join(conds) or 'true'} THEN {priority}")
    if not whens:
        return "NULL"
    guard = "WHEN error_text = '' THEN NULL " if failure else ""
    return f"CASE {guard}{' '.join(whens)} END"


def _match_rules(con: duckdb.DuckDBPyConnection, rules: Sequence[StageRule]) -> None:
    """Create ``fk_rules`` and ``fk_feat`` (first failure rule and role rule per feature set)."""
    frame = rules_frame(rules)
    con.register("fk_rules_df", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE fk_rules AS SELECT * FROM fk_rules_df")
    con.unregister("fk_rules_df")
    params: list[Any] = []
    fail_case = _rule_case(rules, True, params)
    role_case = _rule_case(rules, False, params)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fk_feat AS
        SELECT feat, {fail_case} AS fail_rule, {role_case} AS role_rule FROM fk_feat_text
        """,
        params,
    )


_NULLABLE = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
}


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """The steps as pandas via Arrow (much faster than DuckDB's ``.df()``).

    Integers that can be missing stay nullable; step numbers are plain ``int64``.
    """
    frame = table.to_pandas(types_mapper=_NULLABLE.get)
    return frame.astype({"step": "int64", "depth": "int64", "attempt": "int64"})


def _check_spans_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in ("trace_id", "span_id") if c not in frame.columns]
    if missing:
        raise FailkitError(
            f"the spans DataFrame has no {', '.join(missing)} column: pass store.spans_df() "
            "or a frame with the columns of failkit.schema.SPAN_COLUMNS"
        )
    dup = frame.duplicated(["trace_id", "span_id"])
    if dup.any():
        first = frame.loc[dup, ["trace_id", "span_id"]].iloc[0].tolist()
        raise FailkitError(
            f"{int(dup.sum())} duplicate (trace_id, span_id) rows, e.g. {first}: "
            "drop them with frame.drop_duplicates(['trace_id', 'span_id'])"
        )


@contextmanager
def _session(
    source: Source, trace_ids: Sequence[str] | None, label_names: Sequence[str]
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private connection with ``fk_source``, ``fk_runs`` and ``fk_flags`` ready."""
    ids = None if trace_ids is None else [str(t).lower() for t in trace_ids]
    where, params = ("", None) if ids is None else (" WHERE list_contains(?, trace_id)", [ids])
    if isinstance(source, TraceStore):
        con = source.con.cursor()
        if ids is None:
            con.execute("CREATE TEMP VIEW fk_source AS SELECT * FROM spans")
        else:
            con.execute(f"CREATE TEMP TABLE fk_source AS SELECT * FROM spans{where}", params)
        con.execute("CREATE TEMP VIEW fk_runs AS SELECT trace_id, outcome FROM traces")
        con.execute(
            "CREATE TEMP TABLE fk_flags AS SELECT trace_id, span_id, name FROM labels "
            "WHERE span_id IS NOT NULL AND list_contains(?, name)",
            [list(label_names)],
        )
    elif isinstance(source, pd.DataFrame):
        _check_spans_frame(source)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        frame = _frame_for_duckdb(source)
        con.register("fk_df", frame)
        cols = ", ".join(
            f'CAST("{c.name}" AS {_FRAME_TYPES.get(c.sql_type, c.sql_type)}) AS "{c.name}"'
            if c.name in frame.columns
            else f'CAST(NULL AS {_FRAME_TYPES.get(c.sql_type, c.sql_type)}) AS "{c.name}"'
            for c in _USED_COLUMNS
        )
        con.execute(f"CREATE TEMP TABLE fk_source AS SELECT {cols} FROM fk_df{where}", params)
        con.unregister("fk_df")
        con.execute("CREATE TEMP TABLE fk_runs (trace_id VARCHAR, outcome VARCHAR)")
        con.execute("CREATE TEMP TABLE fk_flags (trace_id VARCHAR, span_id VARCHAR, name VARCHAR)")
    else:
        raise FailkitError(
            f"expected a TraceStore or a spans DataFrame, got {type(source).__name__}: "
            "use failkit.connect(...) or store.spans_df()"
        )
    try:
        yield con
    finally:
        con.close()


def steps(
    source: Source,
    *,
    rules: Sequence[StageRule] | None = None,
    non_idempotent_tools: Sequence[str] | None = None,
    label_names: Sequence[str] = (),
    trace_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every run as an ordered chain of steps, with stages, attempts and its first failure.

    Args:
        source: a TraceStore or a spans DataFrame (from a DataFrame every run's outcome is
            unknown: a run failed when it has an unrecovered error).
        rules: the stage table (default :data:`failkit.stages.DEFAULT_RULES`).
        non_idempotent_tools: patterns of tools whose effect repeats when called again
            (default :data:`failkit.stages.DEFAULT_NON_IDEMPOTENT`).
        label_names: labels (with a span_id) that locate a silent failure, e.g.
            ``("mistake_step",)``; none by default, so that labels used to evaluate
            localization do not leak into it.
        trace_ids: only these runs.

    Returns:
        One row per step, ordered by ``trace_id`` and ``step``:
        ``trace_id``; ``step`` (1..n by start time, parents first on ties); ``span_id``,
        ``parent_id``, ``depth`` (0 for roots); ``kind``; ``stage`` (role stage, or for a
        failed step the stage blamed); ``name``, ``tool_name``, ``model``, ``status``,
        ``error_type``, ``error_message``, ``start_time``, ``duration_s``, ``tokens_in``,
        ``tokens_out``, ``cost_usd`` as logged; ``attempt`` (n-th call of the same intent:
        same tool with near-same arguments, or same LLM request); ``is_first_failure``,
        ``after_failure``; ``cause_span_id`` (failed steps and the first failure: the step
        blamed); ``rule`` (stage rule applied); ``transient``, ``recovered``, ``propagated``
        (failed steps); ``intent_id`` (hash grouping repeats; NULL when none);
        ``side_effect`` (non-idempotent tool calls: ``done``, ``maybe`` — failed in a way
        that may have acted —, ``none``); ``duplicate_side_effect`` (a repeat whose effect
        may have happened before); ``heuristic`` (how a silent first failure was located);
        ``root_reason`` (roots: ``no_parent``, ``missing_parent``, ``parent_cycle``).
    """
    table = check_rules(rules)
    with _session(source, trace_ids, label_names) as con:
        con.execute(_statement("input"))
        tools = con.execute(
            "SELECT DISTINCT coalesce(tool_name, name) FROM fk_in WHERE kind = 'tool'"
        ).fetchall()
        found = sorted(non_idempotent((t for (t,) in tools), non_idempotent_tools))
        con.execute(
            "CREATE TEMP TABLE fk_tools AS SELECT unnest(?::VARCHAR[]) AS tool_name", [found]
        )
        for name in ("parents", "links", "tree"):
            con.execute(_statement(name))
        (unreached,) = con.execute(
            "SELECT (SELECT count(*) FROM fk_sp) - (SELECT count(*) FROM fk_tree)"
        ).fetchall()[0]
        if unreached:
            con.execute(_statement("cycles"))
            con.execute(_statement("cut"))
            con.execute(_statement("tree"))
        con.execute(_statement("ordered"))
        con.execute("DROP TABLE fk_tree; DROP TABLE fk_link")  # free memory as we go
        con.execute(_statement("features"))
        _match_rules(con, table)
        con.execute(_statement("staged"))
        con.execute("DROP TABLE fk_st")
        for name in ("failures", "first", "duplicates"):
            con.execute(_statement(name))
        return _to_pandas(con.sql(_statement("steps")).to_arrow_table())


def _steps_of(source: Source, **options: Any) -> pd.DataFrame:
    """The steps frame: ``source`` itself when it already is one, else :func:`steps`.

    Raises:
        FailkitError: options were given with a steps frame (they shape how steps are made).
    """
    if isinstance(source, pd.DataFrame) and set(STEP_COLUMNS) <= set(source.columns):
        if options:
            raise FailkitError(
                f"{', '.join(sorted(options))} shape how steps are computed, but a steps frame "
                "was passed: pass them to failkit.steps(...) or pass the store instead"
            )
        return source
    return steps(source, **options)


def first_failures(source: Source, **options: Any) -> pd.DataFrame:
    """One row per failed run: where its first failure surfaced and which step caused it.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        **options: keyword options of :func:`steps` (``rules``, ``label_names``, …).

    Returns:
        Columns ``trace_id``, ``span_id`` (where the failure surfaced), ``cause_span_id``
        (the step blamed, e.g. the LLM call that wrote bad arguments), ``step``, ``stage``,
        ``tool_name``, ``error_type``, ``error_message``, ``silent`` (no error located it),
        ``heuristic`` (how a silent one was located), ``rule`` (stage rule applied).
    """
    st = _steps_of(source, **options)
    out = st.loc[st["is_first_failure"]].assign(silent=lambda d: d["heuristic"].notna())
    return out[FIRST_FAILURE_COLUMNS].reset_index(drop=True)


def _first_call(calls: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Columns of the first call of each intent (missing values kept), renamed."""
    first = calls.drop_duplicates(["trace_id", "intent_id"], keep="first")
    return first[["trace_id", "intent_id", *columns]].rename(columns=columns)


def retries(source: Source, **options: Any) -> pd.DataFrame:
    """Repeated calls of one intent (same tool and near-same arguments, or same LLM request).

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        **options: keyword options of :func:`steps`.

    Returns:
        One row per intent called more than once: ``trace_id``, ``intent_id``, ``kind``,
        ``tool_name``, ``model``, ``first_span_id``, ``last_span_id``, ``n_attempts``,
        ``n_failed``, ``first_error_type``, ``result`` — ``recovered`` (a failure, then the
        last attempt worked), ``exhausted`` (the last attempt failed) or ``repeated`` (the
        first attempt worked and was called again).
    """
    st = _steps_of(source, **options)
    rep = st.loc[st["intent_id"].notna()]
    rep = rep.loc[rep.groupby(["trace_id", "intent_id"])["attempt"].transform("max") > 1]
    rep = rep.assign(failed=rep["status"].eq("error")).sort_values(["trace_id", "step"])
    g = rep.groupby(["trace_id", "intent_id"], sort=True)
    out = g.agg(
        kind=("kind", "first"),
        tool_name=("tool_name", "first"),
        model=("model", "first"),
        last_span_id=("span_id", "last"),
        n_attempts=("span_id", "size"),
        n_failed=("failed", "sum"),
        last_failed=("failed", "last"),
    ).reset_index()
    out = out.merge(
        _first_call(
            rep,
            {
                "span_id": "first_span_id",
                "failed": "first_failed",
                "error_type": "first_error_type",
            },
        )
    )
    out["result"] = "recovered"
    out.loc[~out["first_failed"], "result"] = "repeated"
    out.loc[out["last_failed"], "result"] = "exhausted"
    out["n_failed"] = out["n_failed"].astype("int64")
    return out[RETRY_COLUMNS]


def duplicate_side_effects(source: Source, **options: Any) -> pd.DataFrame:
    """Non-idempotent tool calls whose effect may have happened more than once for one intent.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        **options: keyword options of :func:`steps` (``non_idempotent_tools``, …).

    Returns:
        One row per duplicated intent: ``trace_id``, ``intent_id``, ``tool_name``,
        ``first_span_id``, ``last_span_id``, ``n_calls`` (calls that may have acted),
        ``n_done`` (reported success), ``n_maybe`` (failed in a way that may have acted,
        e.g. a timeout), ``first_status``, ``first_error_type``, ``risk`` — ``certain``
        (two or more successes), ``likely`` (one success after a call that may have acted),
        ``possible`` (no success, several calls that may have acted).
    """
    st = _steps_of(source, **options)
    hit = st.loc[st["duplicate_side_effect"], ["trace_id", "intent_id"]].drop_duplicates()
    acted = st.loc[st["side_effect"].isin(["done", "maybe"])]
    acts = acted.merge(hit, on=["trace_id", "intent_id"])
    acts = acts.assign(
        done=acts["side_effect"].eq("done"), maybe=acts["side_effect"].eq("maybe")
    ).sort_values(["trace_id", "step"])
    g = acts.groupby(["trace_id", "intent_id"], sort=True)
    out = g.agg(
        tool_name=("tool_name", "first"),
        last_span_id=("span_id", "last"),
        n_calls=("span_id", "size"),
        n_done=("done", "sum"),
        n_maybe=("maybe", "sum"),
    ).reset_index()
    out = out.merge(
        _first_call(
            acts,
            {
                "span_id": "first_span_id",
                "status": "first_status",
                "error_type": "first_error_type",
            },
        )
    )
    out["n_done"] = out["n_done"].astype("int64")
    out["n_maybe"] = out["n_maybe"].astype("int64")
    out["risk"] = "possible"
    out.loc[out["n_done"] == 1, "risk"] = "likely"
    out.loc[out["n_done"] >= 2, "risk"] = "certain"
    return out[DUPLICATE_COLUMNS]


def _failure_events(st: pd.DataFrame) -> pd.DataFrame:
    """Failures of failed runs in step order: unpropagated errors and silent first failures."""
    failed_runs = st.loc[st["is_first_failure"], "trace_id"]
    ev = st.loc[
        st["trace_id"].isin(failed_runs)
        & ((st["status"].eq("error") & ~st["propagated"]) | st["heuristic"].notna())
    ]
    return ev.sort_values(["trace_id", "step"])


def failure_transitions(source: Source, **options: Any) -> pd.DataFrame:
    """How failures follow each other: a failure at one stage, then the next one at another.

    Counts consecutive pairs of failures within each failed run (unpropagated errors,
    recovered or not, and silent first failures).

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        **options: keyword options of :func:`steps`.

    Returns:
        One row per stage pair, most frequent first: ``from_stage``, ``to_stage``,
        ``n_transitions``, ``n_runs`` (runs with that transition), ``share`` (of the
        transitions leaving ``from_stage``).
    """
    ev = _failure_events(_steps_of(source, **options))
    pairs = pd.DataFrame(
        {
            "trace_id": ev["trace_id"],
            "from_stage": ev["stage"],
            "to_stage": ev.groupby("trace_id")["stage"].shift(-1),
        }
    ).dropna(subset=["to_stage"])
    out = (
        pairs.groupby(["from_stage", "to_stage"])
        .agg(n_transitions=("trace_id", "size"), n_runs=("trace_id", "nunique"))
        .reset_index()
    )
    leaving = out.groupby("from_stage")["n_transitions"].transform("sum")
    out["share"] = out["n_transitions"] / leaving
    out = out.sort_values(
        ["n_transitions", "from_stage", "to_stage"], ascending=[False, True, True]
    )
    return out[TRANSITION_COLUMNS].reset_index(drop=True)


def wasted_after_failure(source: Source, **options: Any) -> pd.DataFrame:
    """What each failed run spent after its first failure surfaced.

    Tokens are summed over LLM steps only and cost over steps that are not agents or chains
    (those repeat their children's sums, pitfall 12).

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        **options: keyword options of :func:`steps`.

    Returns:
        One row per failed run: ``trace_id``, ``first_failure_step``, ``n_steps``,
        ``n_steps_after``, ``tokens_in_after``, ``tokens_out_after``, ``cost_usd_after``,
        ``seconds_after`` (from the end of the failing step to the end of the run),
        ``cost_share_after`` (of the run's cost; NaN when the run cost nothing).
    """
    st = _steps_of(source, **options)
    first = st.loc[st["is_first_failure"], ["trace_id", "step", "start_time", "duration_s"]]
    if first.empty:
        return pd.DataFrame(columns=WASTE_COLUMNS)
    runs = st.loc[st["trace_id"].isin(first["trace_id"])]
    end = runs["start_time"] + pd.to_timedelta(runs["duration_s"].fillna(0), unit="s")
    llm = runs["kind"].eq("llm")
    costed = ~runs["kind"].isin(["agent", "chain"])
    after = runs["after_failure"]
    parts = pd.DataFrame(
        {
            "trace_id": runs["trace_id"],
            "after": after,
            "tin": runs["tokens_in"].where(llm & after, 0).fillna(0),
            "tout": runs["tokens_out"].where(llm & after, 0).fillna(0),
            "cost_after": runs["cost_usd"].where(costed & after, 0).fillna(0),
            "cost": runs["cost_usd"].where(costed, 0).fillna(0),
            "end": end,
        }
    )
    g = parts.groupby("trace_id").agg(
        n_steps=("after", "size"),
        n_steps_after=("after", "sum"),
        tokens_in_after=("tin", "sum"),
        tokens_out_after=("tout", "sum"),
        cost_usd_after=("cost_after", "sum"),
        cost=("cost", "sum"),
        run_end=("end", "max"),
    )
    f = first.set_index("trace_id")
    fail_end = f["start_time"] + pd.to_timedelta(f["duration_s"].fillna(0), unit="s")
    out = g.join(f["step"].rename("first_failure_step")).reset_index()
    seconds = (out["run_end"] - out["trace_id"].map(fail_end)).dt.total_seconds()
    out["seconds_after"] = seconds.clip(lower=0).astype("float64")
    out["cost_share_after"] = (out["cost_usd_after"] / out["cost"].where(out["cost"] > 0)).astype(
        "float64"
    )
    for c in ("n_steps_after", "tokens_in_after", "tokens_out_after", "first_failure_step"):
        out[c] = out[c].astype("int64")
    out["cost_usd_after"] = out["cost_usd_after"].astype("float64")
    return out[WASTE_COLUMNS].sort_values("trace_id").reset_index(drop=True)


_MESSAGE_CHARS = 100


def _error_text(error_type: Any, message: Any) -> str:
    """``Type: message`` on one line, without repeating a type the message starts with."""
    kind, text = _one_line(error_type, 40), _one_line(message)
    if not kind or text.startswith(kind):
        return text or kind
    return f"{kind}: {text}" if text else kind


def _seconds(value: Any) -> str:
    return "       ?s" if pd.isna(value) else f"{value:>8.3f}s"


def _one_line(text: Any, limit: int = _MESSAGE_CHARS) -> str:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Chain:
    """One run as a readable chain: ``str()`` for text, HTML in notebooks, :attr:`steps`.

    Attributes:
        trace_id: the run.
        steps: its rows of :func:`steps`.
    """

    trace_id: str
    steps: pd.DataFrame

    def _lines(self) -> list[tuple[dict[str, Any], str, str]]:
        """Per step: the row, its text (mark, indent, what it is) and its notes."""
        st = self.steps
        step_of = dict(zip(st["span_id"], st["step"], strict=True))
        first = st.loc[st["is_first_failure"]]
        blamed = {}
        if len(first):
            row = first.iloc[0]
            if row["cause_span_id"] != row["span_id"]:
                blamed[row["cause_span_id"]] = int(row["step"])
        out = []
        for row in st.to_dict("records"):
            mark = "✗" if row["status"] == "error" else ("·" if row["after_failure"] else "✓")
            what = row["tool_name"] if isinstance(row["tool_name"], str) else row["name"]
            label = f"{'  ' * int(row['depth'])}{mark} {row['kind']} {_one_line(what, 60)}"
            notes = [f"[{row['stage']}]"]
            if row["attempt"] > 1:
                notes.append(f"attempt {row['attempt']}")
            if row["status"] == "error" and not row["is_first_failure"]:
                kind = (
                    "recovered"
                    if row["recovered"]
                    else ("propagated" if row["propagated"] else "error")
                )
                notes.append(f"{kind}: {_one_line(row['error_type'], 40)}")
            if row["duplicate_side_effect"]:
                notes.append("⚠ duplicate side effect")
            if row["root_reason"] in ("missing_parent", "parent_cycle"):
                notes.append(f"(root: {row['root_reason']})")
            if row["span_id"] in blamed:
                notes.append(f"← cause of the failure at step {blamed[row['span_id']]}")
            if row["is_first_failure"]:
                cause = row["cause_span_id"]
                at = "" if cause == row["span_id"] else f", caused at step {step_of.get(cause)}"
                if isinstance(row["heuristic"], str):
                    notes.append(f"← first failure? (silent, located by {row['heuristic']})")
                else:
                    err = _error_text(row["error_type"], row["error_message"])
                    notes.append(f"← first failure ({row['stage']}: {err}{at})")
            out.append((row, label, " ".join(notes)))
        return out

    def _title(self) -> str:
        st = self.steps
        first = st.loc[st["is_first_failure"]]
        verdict = f"failed at step {int(first['step'].iloc[0])}" if len(first) else "no failure"
        return f"run {self.trace_id}: {len(st)} steps, {verdict}"

    def __str__(self) -> str:
        lines = self._lines()
        width = max((len(label) for _, label, _ in lines), default=0)
        body = [
            f"{int(row['step']):>4} {label:<{width}} {_seconds(row['duration_s'])}  {notes}"
            for row, label, notes in lines
        ]
        return "\n".join([self._title(), *body])

    def __repr__(self) -> str:
        return f"Chain({self.trace_id!r}, {len(self.steps)} steps)"

    def _repr_html_(self) -> str:
        rows = []
        for row, label, notes in self._lines():
            style = ""
            if row["is_first_failure"]:
                style = ' style="background:#fde2e1"'
            elif row["after_failure"]:
                style = ' style="color:#888"'
            cells = (str(row["step"]), label, _seconds(row["duration_s"]).strip(), notes)
            tds = "".join(
                f'<td style="text-align:left;white-space:pre">{escape(c)}</td>' for c in cells
            )
            rows.append(f"<tr{style}>{tds}</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("step", "what", "seconds", "notes"))
        return (
            f"<p><b>{escape(self._title())}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )


def chain(source: Source, trace_id: str, **options: Any) -> Chain:
    """One run as a readable chain of steps with its first failure marked.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`steps`.
        trace_id: the run.
        **options: keyword options of :func:`steps`.

    Raises:
        FailkitError: no run has that id.
    """
    tid = str(trace_id).lower()
    if isinstance(source, pd.DataFrame) and set(STEP_COLUMNS) <= set(source.columns):
        every = _steps_of(source, **options)
        st = every.loc[every["trace_id"] == tid].reset_index(drop=True)
    else:
        st = steps(source, trace_ids=[tid], **options)
    if st.empty:
        raise FailkitError(f"no run with trace_id {trace_id!r}: see store.traces_df()")
    return Chain(tid, st)
