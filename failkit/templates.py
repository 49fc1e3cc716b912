"""Message templates: error messages with their variable parts masked, as log template miners do.

Two steps, both run once per distinct message rather than once per event:

1. :func:`mask` replaces what varies between occurrences of one kind of message — URLs,
   e-mail addresses, UUIDs, timestamps, paths, quoted values, hex numbers and every token
   holding a digit (numbers, ids) — with :data:`MASK`, using the RE2 patterns of
   :data:`MASKS` vectorized over an Arrow array;
2. :func:`merge_masked` feeds the distinct masked messages, sorted, to the Drain log parser
   (``drain3``), which merges messages with the same number of tokens that differ in a few
   positions (``Import of inspect is not allowed`` and ``Import of os is not allowed``
   become ``Import of <*> is not allowed``).

:func:`templates` runs both.

Quoted values are masked when they look like a value (no whitespace: ``'gt_weather'``), sit
in a container (``{'to': 'Seat change'}``), look like code (brackets, ``=``, ``;``,
newlines) or are empty; quoted prose after a word is kept (``error '429 Too Many Requests'``
keeps its words), as it usually names the kind of failure.

Example:
    >>> import pandas as pd
    >>> from failkit.templates import mask
    >>> mask(pd.Series(["request to https://api.x.com/a?id=7 timed out after 30s"])).iloc[0]
    'request to <*> timed out after <*>'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MASK = "<*>"
"""What a masked part becomes (Drain's parameter marker)."""

MAX_TOKENS = 48
"""Tokens of a masked message kept (the rest of a long message rarely tells kinds apart)."""


@dataclass(frozen=True)
class Mask:
    """One masking rule: an RE2 pattern and its replacement (``\\1`` keeps a group).

    Attributes:
        name: what the rule masks.
        pattern: RE2 regular expression (no look-around).
        replacement: text replacing each match.
    """

    name: str
    pattern: str
    replacement: str = MASK


_CODE_CHARS = r"(){}\[\]=;<>\\\n"
_BEFORE = r"(^|[^\w])"  # a quote opens after a non-word character (not the s of "model's")


def _quoted(q: str) -> str:
    """A quoted value: inside a container, or empty, without whitespace, or holding code."""
    inside = rf"([\[{{(,:=]\s*){q}[^{q}\n]*{q}"
    alone = rf"{_BEFORE}{q}(?:[^{q}\s]*|[^{q}\n]*[{_CODE_CHARS}][^{q}]*){q}"
    return f"{inside}|{alone}"


MASKS: tuple[Mask, ...] = (
    Mask("url", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"`<>()\[\]{},]+"),
    Mask("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    Mask("uuid", r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    Mask(
        "timestamp",
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b",
    ),
    Mask("windows_path", r"\b[A-Za-z]:\\[^\s'\"`]+"),
    Mask("path", r"(^|[\s'\"`=(\[,:])(?:~|\.{1,2})?(?:/[\w.@%+~-]+)+/?", r"\1" + MASK),
    Mask("relative_path", r"\b[\w.-]+(?:/[\w.-]+){2,}|\b[\w.-]+/[\w.-]*\.[A-Za-z]\w{0,4}\b"),
    Mask("single_quoted", _quoted("'"), r"\1\2" + MASK),
    Mask("double_quoted", _quoted('"'), r"\1\2" + MASK),
    Mask("backquoted", r"`[^`]*`"),
    Mask("hex", r"(?i)\b0x[0-9a-f]+\b|\b[0-9a-f]{16,}\b"),
    Mask("number_or_id", r"[A-Za-z0-9_]*[0-9][A-Za-z0-9_]*(?:\.[0-9]+)*"),
    Mask("repeats", r"<\*>(?:(?:[,.:/-]\s*|\s+)<\*>)+"),
    Mask("whitespace", r"\s+", " "),
)
"""The masking rules, applied in this order to every distinct message."""


def _mask_unique(values: np.ndarray, max_tokens: int) -> list[str]:
    """Masked text of distinct non-null messages, in their order."""
    arr = pa.array(values, type=pa.large_string())
    for rule in MASKS:
        arr = pc.replace_substring_regex(arr, rule.pattern, rule.replacement)
    arr = pc.utf8_trim_whitespace(arr)
    return [" ".join(t.split(" ")[:max_tokens]) for t in arr.to_pylist()]


def mask(messages: pd.Series | Sequence[str | None], *, max_tokens: int = MAX_TOKENS) -> pd.Series:
    """Messages with their variable parts replaced by :data:`MASK` (rules of :data:`MASKS`).

    Args:
        messages: text per event; missing values stay missing.
        max_tokens: tokens kept of a long message.

    Returns:
        The masked text per message (same index as ``messages`` when it is a Series).
    """
    series = messages if isinstance(messages, pd.Series) else pd.Series(messages, dtype=object)
    codes, uniques = pd.factorize(series)
    texts = np.array([u if isinstance(u, str) else str(u) for u in uniques], dtype=object)
    masked = np.array([*_mask_unique(texts, max_tokens), None], dtype=object)
    return pd.Series(masked[codes], index=series.index, dtype=object)


def templates(
    messages: pd.Series | Sequence[str | None],
    *,
    similarity: float = 0.7,
    depth: int = 4,
    max_tokens: int = MAX_TOKENS,
) -> pd.Series:
    """Log templates of messages: :func:`mask`, then :func:`merge_masked` (Drain).

    Deterministic: a message's template depends on the set of messages, not on their order.

    Args:
        messages: text per event; missing values stay missing.
        similarity: Drain's ``sim_th``: share of equal tokens for a text to join a template.
        depth: Drain's prefix-tree depth (at least 3).
        max_tokens: tokens kept of a long message.

    Returns:
        The template per message (same index as ``messages`` when it is a Series).
    """
    masked = mask(messages, max_tokens=max_tokens)
    return merge_masked(masked, similarity=similarity, depth=depth)


def merge_masked(masked: pd.Series, *, similarity: float = 0.7, depth: int = 4) -> pd.Series:
    """Templates of masked texts: the distinct texts fed to Drain in sorted order.

    The second step of :func:`templates`, on its own so that the masking can run where the
    messages are (one Spark partition at a time) and only the distinct masked texts meet.

    Args:
        masked: :func:`mask` output per event; missing values stay missing.
        similarity: Drain's ``sim_th``: share of equal tokens for a text to join a template.
        depth: Drain's prefix-tree depth (at least 3).

    Returns:
        The template per text (same index as ``masked``).
    """
    from drain3.drain import Drain

    codes, uniques = pd.factorize(masked, sort=True)
    drain = Drain(depth=depth, sim_th=similarity, param_str=MASK)
    cluster_ids = [drain.add_log_message(text)[0].cluster_id for text in uniques]
    found = [drain.id_to_cluster[c].get_template() for c in cluster_ids]
    out = np.array([*found, None], dtype=object)
    return pd.Series(out[codes], index=masked.index, dtype=object)
