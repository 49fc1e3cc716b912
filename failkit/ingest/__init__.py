"""Format adapters: each reads one trace format into the normalized schema."""

from failkit.ingest.detect import adapters, detect, register, supported_formats
from failkit.ingest.labels import LabelsCsvAdapter
from failkit.ingest.native import NativeJsonlAdapter

register(NativeJsonlAdapter())
register(LabelsCsvAdapter())

__all__ = ["adapters", "detect", "register", "supported_formats"]
