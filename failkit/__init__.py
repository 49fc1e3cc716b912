"""failkit: find out why AI agents fail in production and which design change would fix it."""

from failkit.design import Calibration, Design, Dist, Stage
from failkit.errors import FailkitError, FormatError, StoreLockedError
from failkit.reliability import pass_hat_k, task_flakiness
from failkit.simulate import SLO, simulate
from failkit.store import IngestReport, TraceStore, connect

__all__ = [
    "SLO",
    "Calibration",
    "Design",
    "Dist",
    "FailkitError",
    "FormatError",
    "IngestReport",
    "Stage",
    "StoreLockedError",
    "TraceStore",
    "connect",
    "pass_hat_k",
    "simulate",
    "task_flakiness",
]
__version__ = "0.1.0"
