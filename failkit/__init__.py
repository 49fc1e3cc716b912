"""failkit: find out why AI agents fail in production and which design change would fix it."""

from failkit.errors import FailkitError, FormatError, StoreLockedError
from failkit.store import IngestReport, TraceStore, connect

__all__ = [
    "FailkitError",
    "FormatError",
    "IngestReport",
    "StoreLockedError",
    "TraceStore",
    "connect",
]
__version__ = "0.1.0"
