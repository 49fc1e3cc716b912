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
from failkit.templates import mask, templates

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

    See the module docstring for how events, templates and modes are made.

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
    ev = _events(st, lab, label_names)
    if ev.empty:
        return pd.DataFrame(columns=MODE_COLUMNS)
    has_error = ev["status"].eq("error").to_numpy()
    has_text = ev["text"].notna().to_numpy() & ~has_error
    failure_rules = {r.id for r in check_rules(rules) if r.error is not None}
    short = _unique_map(ev["error_type"], _short_type)
    category = pd.Series(
        np.select(
            [has_error & ev["rule"].isin(failure_rules).to_numpy(), has_error, has_text],
            [ev["rule"], short.fillna("error"), "judged"],
            "silent",
        ),
        index=ev.index,
        dtype=object,
    )
    template = pd.Series(index=ev.index, dtype=object)
    template[has_error] = templates(
        ev.loc[has_error, "error_message"].fillna(ev.loc[has_error, "error_type"])
    )
    template[has_text] = mask(ev.loc[has_text, "text"])
    docs = pd.Series(index=ev.index, dtype=object)
    docs[has_error] = _unique_map(
        short[has_error].fillna("") + " " + template[has_error].fillna(""),
        partial(_words, limit=HEAD_WORDS),
    )
    docs[has_text] = _unique_map(mask(ev.loc[has_text, "text"], max_tokens=_TEXT_TOKENS), _words)
    keys = pd.Series(index=ev.index, dtype=object)
    terms: dict[str, list[str]] = {}
    for sel, similarity, stop_words in (
        (has_error, template_similarity, None),
        (has_text, text_similarity, "english"),
    ):
        if sel.any():
            k, t = _group(
                category[sel], docs[sel], similarity=similarity, seed=seed, stop_words=stop_words
            )
            keys[sel] = k
            terms.update(t)
    silent = ~(has_error | has_text)
    keys[silent] = "silent\x1f" + ev.loc[silent, "stage"].fillna("other")
    canon_text = template.where(~pd.Series(silent, index=ev.index), ev["stage"].fillna("other"))
    canon_src = short.fillna("") + "\x1f" + canon_text.fillna("")
    counts = (
        pd.DataFrame({"key": keys, "category": category, "src": canon_src, "text": canon_text})
        .groupby(["key", "category", "src"], sort=True, dropna=False)
        .agg(n=("text", "size"), text=("text", "first"))
        .reset_index()
        .sort_values(["key", "n", "src"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("key")
    )
    ids = [_mode_id(c, s) for c, s in zip(counts["category"], counts["src"], strict=True)]
    mode_labels = [
        _label(c, t, terms.get(k, []))
        for c, t, k in zip(counts["category"], counts["text"], counts["key"], strict=True)
    ]
    out = ev.assign(
        category=category,
        template=template,
        mode_id=keys.map(dict(zip(counts["key"], ids, strict=True))),
        mode_label=keys.map(dict(zip(counts["key"], mode_labels, strict=True))),
        silent=~has_error,
        recovered=ev["recovered"].astype(bool) & has_error,
    )
    return out[MODE_COLUMNS].sort_values(["trace_id", "step"]).reset_index(drop=True)


def _label(category: str, text: Any, terms: list[str]) -> str:
    """Readable name of a mode."""
    if category == "silent":
        return f"silent failure in {text} (no error raised)"
    if category == "judged":
        return "judged: " + (", ".join(terms) or _shorten(str(text)))
    return f"{category}: {_shorten(str(text))}" if isinstance(text, str) else category


def _first_by_count(frame: pd.DataFrame, group: str, value: str, n: int) -> pd.Series:
    """Per group, the ``n`` most frequent non-missing values (ties: the smallest), as lists."""
    counts = frame.dropna(subset=[value]).groupby([group, value]).size().rename("n").reset_index()
    counts = counts.sort_values([group, "n", value], ascending=[True, False, True])
    return counts.groupby(group)[value].agg(lambda s: list(s[:n]))


def failure_mode_summary(
    source: Source,
    *,
    modes: pd.DataFrame | None = None,
    n_examples: int = 3,
    n_tools: int = 3,
    **options: Any,
) -> pd.DataFrame:
    """One row per failure mode: how often, how bad, since when, and where to look.

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
    ev = modes.merge(st[[*_KEY, "kind", "cost_usd", "duration_s", "after_failure"]], on=_KEY)
    own = ~ev["after_failure"].astype(bool) & ~ev["kind"].isin(_UNCOSTED_KINDS)
    ev = ev.assign(
        own_cost=ev["cost_usd"].where(own, 0.0).fillna(0.0),
        own_seconds=ev["duration_s"].where(own, 0.0).fillna(0.0),
    )
    first = ev.loc[ev["is_first_failure"].astype(bool), ["trace_id", "mode_id"]]
    first = first.drop_duplicates("trace_id")
    waste = wasted_after_failure(st).merge(first, on="trace_id")
    after = waste.groupby("mode_id")[["cost_usd_after", "seconds_after"]].sum()
    g = ev.groupby("mode_id", sort=False)
    out = g.agg(
        mode_label=("mode_label", "first"),
        category=("category", "first"),
        n_events=("span_id", "size"),
        n_runs=("trace_id", "nunique"),
        first_failure_share=("is_first_failure", "mean"),
        recovered_share=("recovered", "mean"),
        own_cost=("own_cost", "sum"),
        own_seconds=("own_seconds", "sum"),
        first_seen=("start_time", "min"),
        last_seen=("start_time", "max"),
    )
    n_failed = first.groupby("mode_id").size()
    out["n_failed_runs"] = n_failed.reindex(out.index, fill_value=0).astype("int64")
    out["share_of_failed_runs"] = out["n_failed_runs"] / max(len(first), 1)
    out["wasted_cost_usd"] = out["own_cost"] + after["cost_usd_after"].reindex(
        out.index, fill_value=0.0
    )
    out["wasted_seconds"] = out["own_seconds"] + after["seconds_after"].reindex(
        out.index, fill_value=0.0
    )
    out["main_stage"] = _first_by_count(ev, "mode_id", "stage", 1).str[0]
    out["top_tools"] = _first_by_count(ev, "mode_id", "tool_name", n_tools)
    out["top_tools"] = out["top_tools"].apply(lambda v: v if isinstance(v, list) else [])
    out["trend"] = _trend(ev, st)
    out["example_trace_ids"] = _examples(ev, n_examples)
    out = out.reset_index().sort_values(
        ["n_failed_runs", "n_events", "mode_id"], ascending=[False, False, True]
    )
    for c in ("first_failure_share", "recovered_share", "wasted_cost_usd", "wasted_seconds"):
        out[c] = out[c].astype("float64")
    return out[SUMMARY_COLUMNS].reset_index(drop=True)


def _trend(ev: pd.DataFrame, st: pd.DataFrame) -> pd.Series:
    """Per mode: events per run in runs started in the later half of the time window, over
    the same in the earlier half (0.5 added to both event counts)."""
    run_start = st.groupby("trace_id")["start_time"].min().dropna()
    if run_start.empty:
        return pd.Series(np.nan, index=ev["mode_id"].unique())
    mid = run_start.min() + (run_start.max() - run_start.min()) / 2
    late_runs = int((run_start > mid).sum())
    early_runs = int((run_start <= mid).sum())
    started = ev["trace_id"].map(run_start)
    timed = ev.loc[started.notna()]
    late = (started[timed.index] > mid).groupby(timed["mode_id"]).agg(["sum", "size"])
    early = late["size"] - late["sum"]
    if late_runs == 0 or early_runs == 0:
        return pd.Series(np.nan, index=late.index)
    return ((late["sum"] + 0.5) / late_runs) / ((early + 0.5) / early_runs)


def _examples(ev: pd.DataFrame, n: int) -> pd.Series:
    """Per mode, up to ``n`` runs: where it was the first failure first, then by time."""
    order = ev.assign(not_first=~ev["is_first_failure"].astype(bool)).sort_values(
        ["mode_id", "not_first", "start_time", "trace_id"]
    )
    order = order.drop_duplicates(["mode_id", "trace_id"])
    return order.groupby("mode_id")["trace_id"].agg(lambda s: list(s[:n]))


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
