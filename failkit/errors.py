"""The exceptions failkit raises on purpose."""

from __future__ import annotations


class FailkitError(ValueError):
    """Base of every error failkit raises on purpose; the message says what to do."""


class FormatError(FailkitError):
    """A file could not be read as any supported trace format (or the one asked for)."""


class StoreLockedError(FailkitError):
    """The database file is held by another process."""
