"""failkit: find out why AI agents fail in production and which design change would fix it."""

from typing import TYPE_CHECKING

from failkit.chains import (
    Chain,
    chain,
    duplicate_side_effects,
    failure_transitions,
    first_failures,
    retries,
    steps,
    wasted_after_failure,
)
from failkit.design import Calibration, Design, Dist, Stage
from failkit.errors import FailkitError, FormatError, StoreLockedError
from failkit.estimate import backtest, round_shares
from failkit.failures import failure_mode_summary, failure_modes
from failkit.lake import connect_parquet, export_parquet
from failkit.reliability import (
    compounding,
    compounding_gap,
    pass_hat_k,
    stage_reliability,
    task_flakiness,
)
from failkit.simulate import SLO, simulate
from failkit.store import IngestReport, TraceStore, connect
from failkit.summary import Summary, summary

if TYPE_CHECKING:
    from failkit.widgets import enable_offline_charts, explore

_LAZY = {"explore": "failkit.widgets", "enable_offline_charts": "failkit.widgets"}
"""Names whose modules load ipywidgets and Altair, imported on first use."""

__all__ = [
    "SLO",
    "Calibration",
    "Chain",
    "Design",
    "Dist",
    "FailkitError",
    "FormatError",
    "IngestReport",
    "Stage",
    "StoreLockedError",
    "Summary",
    "TraceStore",
    "backtest",
    "chain",
    "compounding",
    "compounding_gap",
    "connect",
    "connect_parquet",
    "duplicate_side_effects",
    "enable_offline_charts",
    "explore",
    "export_parquet",
    "failure_mode_summary",
    "failure_modes",
    "failure_transitions",
    "first_failures",
    "pass_hat_k",
    "retries",
    "round_shares",
    "simulate",
    "stage_reliability",
    "steps",
    "summary",
    "task_flakiness",
    "wasted_after_failure",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'failkit' has no attribute {name!r}")
