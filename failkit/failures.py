"""Failure modes: thousands of failures grouped into a few named, stable kinds of failure.

How failure events become modes:

1. **Events.** Every failed step that is not a propagated copy of a descendant's error
   (recovered or not, in any run); every silent first failure of a failed run (the step
   located by :func:`failkit.steps`' heuristic); every step a label named in ``label_names``
   points at (a judge's or a person's verdict).
2. **Category.** An error takes the id of the failure rule of the stage table that matched
   it (``timeout``, ``rate_limit``, ``bad_arguments``, …, see :mod:`failkit.stages`), else its
   error type (last dotted part; an HTTP status code becomes ``HTTP 5xx``). An event without
   an error is ``judged`` when labels give it a comment, else ``silent``.
3. **Templates.** Error messages become templates (:func:`failkit.templates.templates`:
   ids, numbers, paths, URLs, quoted values masked as ``<*>``); comments are masked alike.
4. **Modes.** Within each category the distinct texts — error type and the first
   :data:`HEAD_WORDS` words of the template, or the words of the masked comment — are
   clustered by TF-IDF cosine similarity: average-linkage agglomerative clustering cut at
   ``template_similarity`` (``text_similarity`` for comments). A mode is
   a kind of failure, not a (tool, kind) pair: tools, stages and models are breakdowns
   inside it. Silent events without text form one mode per stage — nothing else in the
   traces tells a wrong answer from a hallucination.
5. **Ids and labels.** A mode's canonical text is its most frequent template (ties: the
   smallest). ``mode_id`` hashes category and canonical text, so re-runs on the same data
   give the same ids, and so does other data as long as a mode's most frequent template
   stays the same (Drain generalizes a template from the messages it sees: one message
   alone keeps its words); ``mode_label`` is the category and the canonical template, or
   key terms for comments.

No randomness is involved below :data:`MAX_EXACT` distinct texts per category; above it
the clustering is fitted on a sample drawn with ``seed``.

:func:`failure_modes` runs in three steps, so that the data-sized ones can run where the
data is (:mod:`failkit.spark.failures` runs them on Spark, here they run on the whole frame):
:func:`failure_events` needs only each run's steps and labels (events, categories, masked
messages and comments, a ``signature`` per distinct kind of event); :func:`mode_table` needs
only the distinct signatures and their counts (Drain, clustering, canonical templates, ids
and labels); :func:`with_modes` joins the table back to the events. The summary is partial
sums over whole runs (:func:`summary_parts`) added up by :func:`summary_from_parts`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from failkit.chains import STEP_COLUMNS, Source, steps, wasted_after_failure
from failkit.errors import FailkitError
from failkit.schema import LABEL_COLUMNS, names
from failkit.stages import StageRule, check_rules
from failkit.store import TraceStore
from failkit.templates import mask, merge_masked

MODE_COLUMNS: list[str] = [
    "trace_id", "span_id", "step", "stage", "tool_name", "model", "error_type", "category",
    "template", "mode_id", "mode_label", "is_first_failure", "recovered", "silent",
    "start_time",
]  # fmt: skip
"""Columns of :func:`failure_modes`."""

SUMMARY_COLUMNS: list[str] = [
    "mode_id", "mode_label", "category", "main_stage", "top_tools", "n_events", "n_runs",
    "n_failed_runs", "share_of_failed_runs", "first_failure_share", "recovered_share",
    "wasted_cost_usd", "wasted_seconds", "first_seen", "last_seen", "trend",
    "example_trace_ids",
]  # fmt: skip
"""Columns of :func:`failure_mode_summary`."""

SIGNATURE_COLUMNS: list[str] = [
    "signature", "category", "silent", "short_type", "sig_text", "sig_doc",
]  # fmt: skip
"""Columns of :func:`signatures` (without the count ``n``)."""

EVENT_COLUMNS: list[str] = [
    *(c for c in MODE_COLUMNS if c not in ("template", "mode_id", "mode_label")),
    *(c for c in SIGNATURE_COLUMNS if c not in ("category", "silent")),
]
"""Columns of :func:`failure_events`."""

STABILITY_COLUMNS: list[str] = ["resample", "n_runs", "n_events", "n_modes", "ari", "same_id_share"]
"""Columns of :func:`failure_mode_stability`."""

MAX_EXACT = 2000
"""Distinct texts of one category clustered exactly; beyond, a seeded sample is clustered
and every text joins the nearest cluster."""

HEAD_WORDS = 12
"""Words of a template (after its error type) that decide its mode: the head of an error
message names the kind of failure, its tail mostly carries data (code, payloads)."""

_TEXT_TOKENS = 1000
"""Tokens of a comment its mode is decided on."""
_WORD = r"(?u)\b[^\W\d_][^\W\d_]+\b"
_LABEL_CHARS = 90
_N_TERMS = 4
_UNCOSTED_KINDS = ("agent", "chain")  # their cost and time repeat their children's
_KEY = ["trace_id", "span_id"]
_EXAMPLE_KEYS = ["mode_id", "not_first", "start_time", "trace_id"]
_SUMMED = [
    "n_events", "n_runs", "n_first", "n_recovered", "own_cost", "own_seconds", "n_late",
    "n_timed", "n_failed_runs", "cost_after", "seconds_after",
]  # fmt: skip
_SUMMARY_TYPES = {
    "mode_id": "str", "mode_label": "str", "category": object, "main_stage": object,
    "n_events": "int64", "n_runs": "int64", "n_failed_runs": "int64",
    "share_of_failed_runs": "float64", "first_failure_share": "float64",
    "recovered_share": "float64", "wasted_cost_usd": "float64", "wasted_seconds": "float64",
    "trend": "float64",
}  # fmt: skip
_EVENT_INPUTS = [
    "trace_id", "span_id", "step", "stage", "tool_name", "model", "status", "error_type",
    "error_message", "rule", "is_first_failure", "recovered", "start_time",
]  # fmt: skip


def _prepare(
    source: Source,
    *,
    rules: Sequence[StageRule] | None,
    label_names: Sequence[str],
    labels: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The steps frame and the labels of ``source``."""
    if isinstance(source, pd.DataFrame) and set(STEP_COLUMNS) <= set(source.columns):
        st = source
    else:
        st = steps(source, rules=rules, label_names=tuple(label_names))
    if labels is None:
        labels = (
            source.labels_df()
            if isinstance(source, TraceStore)
            else pd.DataFrame(columns=names(LABEL_COLUMNS))
        )
    missing = [c for c in ("trace_id", "span_id", "name", "comment") if c not in labels.columns]
    if missing:
        raise FailkitError(
            f"the labels frame has no {', '.join(missing)} column: pass store.labels_df()"
        )
    return st, labels


def _comments(labels: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Comments of labels joined per ``by`` key (in label order), in a column ``text``."""
    said = labels.dropna(subset=["comment"])
    return said.groupby(by, sort=False)["comment"].agg("\n".join).rename("text").reset_index()


def _events(st: pd.DataFrame, labels: pd.DataFrame, label_names: Sequence[str]) -> pd.DataFrame:
    """Failure events with the comment text labels give them (``text``, else missing)."""
    lab = labels.loc[labels["name"].isin(list(label_names))]
    lab = lab.assign(trace_id=lab["trace_id"].astype(str).str.lower())
    on_span = lab.loc[lab["span_id"].notna()]
    on_span = on_span.assign(span_id=on_span["span_id"].astype(str).str.lower())
    selected = (st["status"].eq("error") & ~st["propagated"].astype(bool)) | (
        st["is_first_failure"].astype(bool) & st["heuristic"].notna()
    )
    if len(on_span):  # the steps labels point at (few runs: match only those)
        runs = st.loc[st["trace_id"].isin(on_span["trace_id"].unique()), _KEY].reset_index()
        hit = runs.merge(on_span[_KEY].drop_duplicates(), on=_KEY)["index"]
        selected = selected | st.index.isin(hit)
    ev = st.loc[selected, _EVENT_INPUTS].reset_index(drop=True)
    if lab["comment"].isna().all():
        return ev.assign(text=None)
    ev = ev.merge(_comments(on_span, _KEY), on=_KEY, how="left")
    on_run = _comments(lab.loc[lab["span_id"].isna()], ["trace_id"])
    run_text = ev[["trace_id"]].merge(on_run, on="trace_id", how="left")["text"]
    run_text = run_text.where(ev["is_first_failure"].astype(bool).to_numpy())
    return ev.assign(text=ev["text"].where(ev["text"].notna(), run_text.to_numpy()))


def _unique_map(values: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``func`` applied to the distinct values only, spread back (missing stays missing)."""
    codes, uniques = pd.factorize(values)
    done = np.array([*func(pd.Series(uniques, dtype=object)), None], dtype=object)
    return pd.Series(done[codes], index=values.index, dtype=object)


def _short_type(error_type: pd.Series) -> pd.Series:
    """``pkg.mod.TimeoutError`` → ``TimeoutError``; an HTTP status ``503`` → ``HTTP 5xx``."""
    short = error_type.astype(str).str.strip().str.replace(r"^.*\.", "", regex=True)
    return short.str.replace(r"^([1-5])\d\d$", r"HTTP \1xx", regex=True)


def _cluster(
    docs: list[str], *, similarity: float, seed: int, stop_words: str | None
) -> tuple[np.ndarray, list[list[str]]]:
    """Clusters of texts by TF-IDF cosine similarity, and each cluster's key terms.

    Average-linkage agglomerative clustering cut at distance ``1 - similarity``; texts
    without a word form one cluster per distinct text.
    """
    from scipy.sparse import csr_matrix
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    n = len(docs)
    vec = TfidfVectorizer(token_pattern=_WORD, sublinear_tf=True, stop_words=stop_words)
    try:
        x = csr_matrix(vec.fit_transform(docs))
    except ValueError:  # no text has a word
        return pd.factorize(pd.Series(docs), sort=True)[0], [[] for _ in range(n)]
    has_words = np.diff(x.indptr) > 0
    rows = np.flatnonzero(has_words)
    fit = rows
    if rows.size > MAX_EXACT:
        fit = np.sort(np.random.default_rng(seed).choice(rows, MAX_EXACT, replace=False))
    labels = np.full(n, -1)
    if fit.size == 1:
        labels[rows] = 0
    elif fit.size > 1:
        sim = (x[fit] @ x[fit].T).toarray()
        distance = np.clip(1.0 - sim, 0.0, None)
        np.fill_diagonal(distance, 0.0)
        model = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage="average",
            distance_threshold=1.0 - similarity,
        )
        fitted = model.fit_predict(distance)
        if fit.size == rows.size:
            labels[rows] = fitted
        else:  # every text joins the cluster of the sample whose centroid is nearest
            onehot = csr_matrix((np.ones(fit.size), (fitted, np.arange(fit.size))))
            centroids = normalize(onehot @ x[fit])
            labels[rows] = np.asarray((x[rows] @ centroids.T).argmax(axis=1)).ravel()
    k = int(labels.max()) + 1
    wordless = pd.factorize(pd.Series(docs)[~has_words], sort=True)[0]
    labels[~has_words] = k + wordless
    vocab = np.asarray(vec.get_feature_names_out())
    weights = (csr_matrix((np.ones(rows.size), (labels[rows], rows)), shape=(k, n)) @ x).toarray()
    terms = [
        [str(vocab[i]) for i in np.lexsort((vocab, -w))[:_N_TERMS] if w[i] > 0] for w in weights
    ]
    return labels, terms + [[] for _ in range(int(wordless.max(initial=-1)) + 1)]


def _words(text: pd.Series, *, limit: int | None = None) -> pd.Series:
    """The words of each text, the first ``limit`` only (masks and numbers are not words)."""
    return text.str.findall(_WORD).map(lambda w: " ".join(w[:limit]))


def _shorten(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _group(
    category: pd.Series, docs: pd.Series, *, similarity: float, seed: int, stop_words: str | None
) -> tuple[pd.Series, dict[str, list[str]]]:
    """Cluster key per event (``category`` + cluster number) and key terms per cluster key."""
    keys = pd.Series(index=docs.index, dtype=object)
    terms: dict[str, list[str]] = {}
    frame = pd.DataFrame({"category": category, "doc": docs})
    for cat, part in frame.groupby("category", sort=True):
        codes, uniques = pd.factorize(part["doc"], sort=True)
        labels, words = _cluster(
            list(uniques), similarity=similarity, seed=seed, stop_words=stop_words
        )
        cluster_keys = [f"{cat}\x1f{c}" for c in labels]
        keys.loc[part.index] = np.asarray(cluster_keys, dtype=object)[codes]
        terms.update({f"{cat}\x1f{c}": w for c, w in enumerate(words)})
    return keys, terms


def _mode_id(category: str, canonical: str) -> str:
    return hashlib.sha1(f"{category}\x1f{canonical}".encode()).hexdigest()[:12]


def failure_events(
    st: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label_names: Sequence[str] = (),
    rules: Sequence[StageRule] | None = None,
) -> pd.DataFrame:
    """Failure events of whole runs with their signature: step 1 of the pipeline.

    Needs only each run's own steps and labels, so it runs per partition of runs (on Spark)
    as well as on all of them at once.

    Args:
        st: the frame of :func:`failkit.steps` (whole runs).
        labels: their labels (``trace_id``, ``span_id``, ``name``, ``comment``, in order).
        label_names: as in :func:`failure_modes`.
        rules: the stage table the steps were made with.

    Returns:
        One row per event (:data:`EVENT_COLUMNS`): the columns of :func:`failure_modes`
        but ``template``, ``mode_id`` and ``mode_label``, and the signature —
        ``short_type`` (short error type), ``sig_text`` (the masked message of an error,
        the masked comment of a judged event, the stage of a silent one), ``sig_doc`` (the
        words of a judged event's comment) and ``signature`` (a hash of those and
        ``category`` and ``silent``).
    """
    ev = _events(st, labels, label_names)
    if ev.empty:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    has_error = ev["status"].eq("error").to_numpy()
    has_text = ev["text"].notna().to_numpy() & ~has_error
    silent = ~(has_error | has_text)
    failure_rules = {r.id for r in check_rules(rules) if r.error is not None}
    short = _unique_map(ev["error_type"], _short_type)
    category = np.select(
        [has_error & ev["rule"].isin(failure_rules).to_numpy(), has_error, has_text],
        [ev["rule"], short.fillna("error"), "judged"],
        "silent",
    )
    text = pd.Series(index=ev.index, dtype=object)
    text[has_error] = mask(
        ev.loc[has_error, "error_message"].fillna(ev.loc[has_error, "error_type"])
    )
    text[has_text] = mask(ev.loc[has_text, "text"])
    text[silent] = ev.loc[silent, "stage"].fillna("other")
    doc = pd.Series(index=ev.index, dtype=object)
    doc[has_text] = _unique_map(mask(ev.loc[has_text, "text"], max_tokens=_TEXT_TOKENS), _words)
    out = ev.assign(
        category=pd.Series(category, index=ev.index, dtype=object),
        silent=~has_error,
        recovered=ev["recovered"].astype(bool) & has_error,
        short_type=short,
        sig_text=text,
        sig_doc=doc,
    )
    key = out["category"] + "\x1f" + np.where(has_error, "e", "s")
    for c in ("short_type", "sig_text", "sig_doc"):
        key = key + "\x1f" + out[c].fillna("\x00")
    return out.assign(signature=_unique_map(key, _hash))[EVENT_COLUMNS]


def _hash(texts: pd.Series) -> pd.Series:
    return texts.map(lambda t: hashlib.blake2b(t.encode(), digest_size=10).hexdigest())


def signatures(events: pd.DataFrame) -> pd.DataFrame:
    """The distinct signatures of :func:`failure_events` with their event counts ``n``."""
    return (
        events.groupby(SIGNATURE_COLUMNS, sort=True, dropna=False).size().rename("n").reset_index()
    )


def mode_table(
    sigs: pd.DataFrame,
    *,
    template_similarity: float = 0.7,
    text_similarity: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Templates and modes of distinct signatures: step 2 of the pipeline, on all of them.

    Drain merges the masked messages into templates, and each category's distinct texts
    are clustered (module docstring). It reads the set of signatures and their counts only.

    Args:
        sigs: :func:`signatures` (of every event: the counts choose canonical templates).
        template_similarity: as in :func:`failure_modes`.
        text_similarity: as in :func:`failure_modes`.
        seed: as in :func:`failure_modes`.

    Returns:
        One row per signature: ``signature``, ``template``, ``mode_id``, ``mode_label``.
    """
    text_columns = ["short_type", "sig_text", "sig_doc"]  # all-missing ones may be float
    sigs = sigs.astype(dict.fromkeys(text_columns, object)).sort_values(
        "signature", ignore_index=True
    )
    has_error = ~sigs["silent"].astype(bool).to_numpy()
    has_text = ~has_error & sigs["category"].eq("judged").to_numpy()
    silent = ~(has_error | has_text)
    short = sigs["short_type"]
    template = pd.Series(index=sigs.index, dtype=object)
    template[has_error] = merge_masked(sigs.loc[has_error, "sig_text"])
    template[has_text] = sigs.loc[has_text, "sig_text"]
    docs = pd.Series(index=sigs.index, dtype=object)
    docs[has_error] = _unique_map(
        short[has_error].fillna("") + " " + template[has_error].fillna(""),
        partial(_words, limit=HEAD_WORDS),
    )
    docs[has_text] = sigs.loc[has_text, "sig_doc"]
    keys = pd.Series(index=sigs.index, dtype=object)
    terms: dict[str, list[str]] = {}
    for sel, similarity, stop_words in (
        (has_error, template_similarity, None),
        (has_text, text_similarity, "english"),
    ):
        if sel.any():
            k, t = _group(
                sigs.loc[sel, "category"],
                docs[sel],
                similarity=similarity,
                seed=seed,
                stop_words=stop_words,
            )
            keys[sel] = k
            terms.update(t)
    keys[silent] = "silent\x1f" + sigs.loc[silent, "sig_text"]
    canon_text = template.where(~silent, sigs["sig_text"])
    canon_src = short.fillna("") + "\x1f" + canon_text.fillna("")
    frame = pd.DataFrame(
        {"key": keys, "category": sigs["category"], "src": canon_src, "text": canon_text}
    )
    counts = (
        frame.assign(n=sigs["n"])
        .groupby(["key", "category", "src"], sort=True, dropna=False)
        .agg(n=("n", "sum"), text=("text", "first"))
        .reset_index()
        .sort_values(["key", "n", "src"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("key")
    )
    ids = [_mode_id(c, s) for c, s in zip(counts["category"], counts["src"], strict=True)]
    mode_labels = [
        _label(c, t, terms.get(k, []))
        for c, t, k in zip(counts["category"], counts["text"], counts["key"], strict=True)
    ]
    return pd.DataFrame(
        {
            "signature": sigs["signature"],
            "template": template,
            "mode_id": keys.map(dict(zip(counts["key"], ids, strict=True))),
            "mode_label": keys.map(dict(zip(counts["key"], mode_labels, strict=True))),
        }
    )


def with_modes(events: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Events with the template and mode of their signature: step 3 of the pipeline.

    Args:
        events: :func:`failure_events` (any partition of them, extra columns kept).
        table: :func:`mode_table`.

    Returns:
        ``events`` with ``template``, ``mode_id`` and ``mode_label``, by ``trace_id`` and
        ``step``.
    """
    out = events.merge(table, on="signature", how="left", validate="many_to_one")
    return out.sort_values(["trace_id", "step"], ignore_index=True)


def failure_modes(
    source: Source,
    *,
    label_names: Sequence[str] = (),
    labels: pd.DataFrame | None = None,
    rules: Sequence[StageRule] | None = None,
    template_similarity: float = 0.7,
    text_similarity: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per failure event, with its message template and its failure mode.

    See the module docstring for how events, templates and modes are made, and for the
    three steps (:func:`failure_events`, :func:`mode_table`, :func:`with_modes`) that
    :class:`failkit.spark.SparkBackend` runs where the data is.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`failkit.steps`.
        label_names: labels whose ``span_id`` points at a failing step (those steps become
            events; their ``comment`` is the text of an event without an error) and whose
            run-level comments describe the run's first failure, e.g. ``("judge",)``. Also
            passed to :func:`failkit.steps` to locate silent failures (unless ``source``
            already is a steps frame).
        labels: the labels (default: the store's; none for a DataFrame source).
        rules: the stage table (default :data:`failkit.stages.DEFAULT_RULES`); its failure
            rule ids name the categories.
        template_similarity: cosine similarity of TF-IDF vectors above which templates of
            one category share a mode (average linkage).
        text_similarity: the same for comments; low, as comments on one kind of failure
            share few words (a judge words one problem many ways, with the run's values).
        seed: seeds the sample fitted when a category has more than :data:`MAX_EXACT`
            distinct texts.

    Returns:
        Ordered by ``trace_id`` and ``step``: ``trace_id``, ``span_id``, ``step``, ``stage``
        (blamed), ``tool_name``, ``model``, ``error_type`` as logged; ``category`` (failure
        rule id, short error type, ``judged`` or ``silent``); ``template`` (masked message or
        comment; missing for silent events); ``mode_id`` (12 hex digits, stable);
        ``mode_label``; ``is_first_failure``; ``recovered`` (a later step got past it);
        ``silent`` (no error was raised); ``start_time`` of the step.
    """
    st, lab = _prepare(source, rules=rules, label_names=label_names, labels=labels)
    ev = failure_events(st, lab, label_names=label_names, rules=rules)
    if ev.empty:
        return pd.DataFrame(columns=MODE_COLUMNS)
    table = mode_table(
        signatures(ev),
        template_similarity=template_similarity,
        text_similarity=text_similarity,
        seed=seed,
    )
    return with_modes(ev, table)[MODE_COLUMNS]


def _label(category: str, text: Any, terms: list[str]) -> str:
    """Readable name of a mode."""
    if category == "silent":
        return f"silent failure in {text} (no error raised)"
    if category == "judged":
        return "judged: " + (", ".join(terms) or _shorten(str(text)))
    return f"{category}: {_shorten(str(text))}" if isinstance(text, str) else category


def summary_inputs(modes: pd.DataFrame, st: pd.DataFrame) -> pd.DataFrame:
    """Events with what the summary reads of their runs (whole runs in ``st``).

    Returns:
        ``modes`` (events of :func:`failure_modes` or :func:`failure_events`) joined with
        their steps, plus ``own_cost``, ``own_seconds`` (the event's own cost and time:
        none after the run's first failure, none for agent and chain spans), ``run_start``
        and the run's ``cost_usd_after`` and ``seconds_after``
        (:func:`failkit.chains.wasted_after_failure`; missing for runs that did not fail).
    """
    ev = modes.merge(st[[*_KEY, "kind", "cost_usd", "duration_s", "after_failure"]], on=_KEY)
    own = ~ev["after_failure"].astype(bool) & ~ev["kind"].isin(_UNCOSTED_KINDS)
    run_start = st.groupby("trace_id")["start_time"].min()
    waste = wasted_after_failure(st)[["trace_id", "cost_usd_after", "seconds_after"]]
    ev = ev.assign(
        own_cost=ev["cost_usd"].where(own, 0.0).fillna(0.0).astype("float64"),
        own_seconds=ev["duration_s"].where(own, 0.0).fillna(0.0).astype("float64"),
        run_start=ev["trace_id"].map(run_start),
    ).drop(columns=["kind", "cost_usd", "duration_s", "after_failure"])
    return ev.merge(waste.astype({"trace_id": ev["trace_id"].dtype}), on="trace_id", how="left")


def run_midpoint(first: pd.Timestamp, last: pd.Timestamp) -> pd.Timestamp:
    """The middle of the time the runs started in (the trend compares the two halves)."""
    return first + (last - first) / 2


def _window(st: pd.DataFrame) -> tuple[pd.Timestamp, int, int] | None:
    """Midpoint of the runs' start times, runs started after it and runs started before."""
    run_start = st.groupby("trace_id")["start_time"].min().dropna()
    if run_start.empty:
        return None
    mid = run_midpoint(run_start.min(), run_start.max())
    late = int((run_start > mid).sum())
    return mid, late, len(run_start) - late


def summary_parts(
    inputs: pd.DataFrame, mid: pd.Timestamp | None, *, n_examples: int = 3
) -> dict[str, pd.DataFrame]:
    """Partial sums of the summary over whole runs, which :func:`summary_from_parts` adds up.

    Args:
        inputs: :func:`summary_inputs` with ``mode_id``, ``mode_label`` (any set of whole
            runs).
        mid: :func:`run_midpoint` of all the runs (None: no run has a start time).
        n_examples: example runs kept per mode.

    Returns:
        ``modes`` (per mode: counts, sums, first and last seen, events in runs started
        after ``mid``), ``values`` (events per mode and stage, and per mode and tool) and
        ``examples`` (per mode, its best ``n_examples`` runs with their sort keys).
    """
    ev = inputs.sort_values(["trace_id", "step"], ignore_index=True)
    first = ev.loc[ev["is_first_failure"].astype(bool)].drop_duplicates("trace_id")
    timed = ev["run_start"].notna()
    late = ev["run_start"] > mid if mid is not None else pd.Series(False, index=ev.index)
    per = ev.assign(
        n_first=ev["is_first_failure"].astype("int64"),
        n_recovered=ev["recovered"].astype("int64"),
        n_late=(late & timed).astype("int64"),
        n_timed=timed.astype("int64"),
    ).groupby("mode_id", sort=True)
    modes = per.agg(
        mode_label=("mode_label", "first"),
        category=("category", "first"),
        n_events=("span_id", "size"),
        n_runs=("trace_id", "nunique"),
        n_first=("n_first", "sum"),
        n_recovered=("n_recovered", "sum"),
        own_cost=("own_cost", "sum"),
        own_seconds=("own_seconds", "sum"),
        first_seen=("start_time", "min"),
        last_seen=("start_time", "max"),
        n_late=("n_late", "sum"),
        n_timed=("n_timed", "sum"),
    )
    failed = first.groupby("mode_id").agg(
        n_failed_runs=("trace_id", "size"),
        cost_after=("cost_usd_after", "sum"),
        seconds_after=("seconds_after", "sum"),
    )
    modes = modes.join(failed).fillna({"n_failed_runs": 0, "cost_after": 0.0, "seconds_after": 0.0})
    values = pd.concat(
        [
            ev.dropna(subset=[column])
            .groupby(["mode_id", column])
            .size()
            .rename("n")
            .reset_index()
            .rename(columns={column: "value"})
            .assign(column=column)
            for column in ("stage", "tool_name")
        ],
        ignore_index=True,
    )
    return {
        "modes": modes.astype({"n_failed_runs": "int64"}).reset_index(),
        "values": values[["mode_id", "column", "value", "n"]],
        "examples": _top_runs(
            ev.assign(not_first=~ev["is_first_failure"].astype(bool))[_EXAMPLE_KEYS], n_examples
        ),
    }


def _top_runs(order: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per mode, up to ``n`` runs: where it was the first failure first, then by time."""
    order = order.sort_values(_EXAMPLE_KEYS).drop_duplicates(["mode_id", "trace_id"])
    return order.groupby("mode_id").head(n).reset_index(drop=True)


def _first_by_count(values: pd.DataFrame, column: str, n: int) -> pd.Series:
    """Per mode, the ``n`` most frequent values of ``column`` (ties: the smallest), as lists."""
    counts = values.loc[values["column"] == column].groupby(["mode_id", "value"])["n"].sum()
    counts = counts.reset_index().sort_values(
        ["mode_id", "n", "value"], ascending=[True, False, True]
    )
    return counts.groupby("mode_id")["value"].agg(lambda s: list(s[:n]))


def summary_from_parts(
    parts: Sequence[dict[str, pd.DataFrame]],
    window: tuple[pd.Timestamp, int, int] | None,
    *,
    n_examples: int = 3,
    n_tools: int = 3,
) -> pd.DataFrame:
    """:func:`failure_mode_summary` from the :func:`summary_parts` of disjoint sets of runs.

    Args:
        parts: partial sums, one per set of whole runs.
        window: midpoint of the runs' start times, runs started after it and runs started
            at or before it (None: no run has a start time).
        n_examples: example runs per mode.
        n_tools: tools listed per mode.
    """
    modes = pd.concat([p["modes"] for p in parts], ignore_index=True)
    if modes.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    out = modes.groupby("mode_id", sort=False).agg(
        mode_label=("mode_label", "first"),
        category=("category", "first"),
        **{c: (c, "sum") for c in _SUMMED},
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
    )
    out["share_of_failed_runs"] = out["n_failed_runs"] / max(int(out["n_failed_runs"].sum()), 1)
    out["first_failure_share"] = out["n_first"] / out["n_events"]
    out["recovered_share"] = out["n_recovered"] / out["n_events"]
    out["wasted_cost_usd"] = out["own_cost"] + out["cost_after"]
    out["wasted_seconds"] = out["own_seconds"] + out["seconds_after"]
    values = pd.concat([p["values"] for p in parts], ignore_index=True)
    out["main_stage"] = _first_by_count(values, "stage", 1).str[0]
    out["top_tools"] = _first_by_count(values, "tool_name", n_tools)
    out["top_tools"] = out["top_tools"].apply(lambda v: v if isinstance(v, list) else [])
    out["trend"] = np.nan
    if window is not None and window[1] > 0 and window[2] > 0:
        _, late_runs, early_runs = window
        timed = out.loc[out["n_timed"] > 0]
        early = timed["n_timed"] - timed["n_late"]
        out["trend"] = ((timed["n_late"] + 0.5) / late_runs) / ((early + 0.5) / early_runs)
    examples = pd.concat([p["examples"] for p in parts], ignore_index=True)
    out["example_trace_ids"] = (
        _top_runs(examples, n_examples).groupby("mode_id")["trace_id"].agg(list)
    )
    out = out.reset_index().sort_values(
        ["n_failed_runs", "n_events", "mode_id"], ascending=[False, False, True]
    )
    return out[SUMMARY_COLUMNS].astype(_SUMMARY_TYPES).reset_index(drop=True)


def failure_mode_summary(
    source: Source,
    *,
    modes: pd.DataFrame | None = None,
    n_examples: int = 3,
    n_tools: int = 3,
    **options: Any,
) -> pd.DataFrame:
    """One row per failure mode: how often, how bad, since when, and where to look.

    Computed as partial sums over whole runs (:func:`summary_inputs`,
    :func:`summary_parts`) added up by :func:`summary_from_parts` — here one part holds
    every run; on Spark there is a part per partition of runs.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`failkit.steps`.
        modes: :func:`failure_modes` of the same source, when already computed.
        n_examples: example runs per mode.
        n_tools: tools listed per mode.
        **options: keyword options of :func:`failure_modes` (``label_names``, ``rules``, …).

    Returns:
        Most failed runs first: ``mode_id``, ``mode_label``, ``category``, ``main_stage``
        (most frequent stage), ``top_tools`` (list, most frequent first), ``n_events``,
        ``n_runs`` (runs with an event of the mode), ``n_failed_runs`` (failed runs whose
        first failure is of the mode), ``share_of_failed_runs``, ``first_failure_share`` (of
        the events), ``recovered_share`` (of the events), ``wasted_cost_usd`` and
        ``wasted_seconds`` (what the mode's events before a run's first failure cost,
        itself included, plus all that runs spent after a first failure of the mode; each
        step is counted in one mode at most, agent and chain spans never, so the columns
        add up over modes), ``first_seen``, ``last_seen``, ``trend`` (events per run started
        in the later half of the time the runs span over the same in the earlier half, 0.5
        added to both counts: 1 is flat, 2 doubled), ``example_trace_ids`` (list; runs
        where the mode was the first failure first).
    """
    st, lab = _prepare(
        source,
        rules=options.get("rules"),
        label_names=options.get("label_names", ()),
        labels=options.get("labels"),
    )
    if modes is None:
        modes = failure_modes(st, **{**options, "labels": lab})
    if modes.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    window = _window(st)
    part = summary_parts(
        summary_inputs(modes, st), window[0] if window else None, n_examples=n_examples
    )
    return summary_from_parts([part], window, n_examples=n_examples, n_tools=n_tools)


def failure_mode_stability(
    source: Source, *, n_resamples: int = 10, seed: int = 0, **options: Any
) -> pd.DataFrame:
    """How much the modes move when the runs are resampled (bootstrap over runs).

    Each resample draws as many runs as there are, with replacement, keeps the distinct
    ones, computes :func:`failure_modes` on them alone and compares its modes with those
    of all the data on the events both have.

    Args:
        source: a TraceStore, a spans DataFrame or the frame of :func:`failkit.steps`.
        n_resamples: resamples drawn.
        seed: seeds the resampling (and is passed to :func:`failure_modes`).
        **options: keyword options of :func:`failure_modes`.

    Returns:
        One row per resample: ``resample``, ``n_runs`` (distinct runs drawn), ``n_events``,
        ``n_modes`` (in the resample), ``ari`` (adjusted Rand index between the resample's
        modes and the full data's on its events), ``same_id_share`` (events whose
        ``mode_id`` is the same in both).
    """
    from sklearn.metrics import adjusted_rand_score

    st, lab = _prepare(
        source,
        rules=options.get("rules"),
        label_names=options.get("label_names", ()),
        labels=options.get("labels"),
    )
    opts = {**options, "labels": lab, "seed": seed}
    full = failure_modes(st, **opts).set_index(_KEY)["mode_id"]
    runs = st["trace_id"].unique()
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_resamples):
        drawn = np.unique(rng.choice(runs, runs.size, replace=True))
        part = failure_modes(st.loc[st["trace_id"].isin(drawn)], **opts).set_index(_KEY)
        base = full.reindex(part.index)
        ari = adjusted_rand_score(base, part["mode_id"]) if len(part) else np.nan
        same = float((base == part["mode_id"]).mean()) if len(part) else np.nan
        rows.append([b, drawn.size, len(part), part["mode_id"].nunique(), ari, same])
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)
