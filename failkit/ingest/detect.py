"""Which adapter reads a file: by content, not by extension."""

from __future__ import annotations

from pathlib import Path

from failkit.errors import FormatError
from failkit.ingest.base import Adapter, read_head

_REGISTRY: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    """Add an adapter; sniffing tries adapters in registration order."""
    _REGISTRY[adapter.name] = adapter
    return adapter


def adapters() -> dict[str, Adapter]:
    """All registered adapters by format name (importing the built-in ones first)."""
    import failkit.ingest  # noqa: F401  (registers the built-in adapters)

    return dict(_REGISTRY)


def supported_formats() -> str:
    """A readable list of the supported formats."""
    return "\n".join(f"  - {a.name}: {a.description}" for a in adapters().values())


def detect(path: Path) -> Adapter:
    """The adapter whose sniffer recognises the file's first bytes.

    Raises:
        FormatError: nothing matches; the message lists the formats and shows the head.
    """
    head = read_head(path)
    for adapter in adapters().values():
        if adapter.sniff(head, path):
            return adapter
    preview = head[:200].decode("utf-8", errors="replace").replace("\n", "\\n")
    what = "the file is empty" if not head.strip() else f"it starts with: {preview!r}"
    raise FormatError(
        f"{path}: not a trace format failkit recognises ({what}).\n"
        f"Supported formats:\n{supported_formats()}\n"
        "Pass format=... to force one."
    )


def get_adapter(name: str) -> Adapter:
    """The adapter named ``name``.

    Raises:
        FormatError: unknown name; the message lists the valid ones.
    """
    found = adapters().get(name)
    if found is None:
        raise FormatError(f"unknown format {name!r}; use 'auto' or one of: {', '.join(adapters())}")
    return found
