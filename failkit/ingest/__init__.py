"""Format adapters: each reads one trace format into the normalized schema."""

from failkit.ingest.detect import adapters, detect, register, supported_formats
from failkit.ingest.inspect_ai import InspectEvalAdapter, InspectJsonAdapter
from failkit.ingest.labels import LabelsCsvAdapter
from failkit.ingest.langfuse_api import LangfuseApiAdapter
from failkit.ingest.langsmith import LangSmithRunsAdapter
from failkit.ingest.messages import MessagesAdapter
from failkit.ingest.native import NativeJsonlAdapter
from failkit.ingest.openai_agents import OpenAIAgentsAdapter
from failkit.ingest.otlp import OtlpAdapter
from failkit.ingest.trail import TrailAnnotationsAdapter, TrailTraceAdapter
from failkit.ingest.who_and_when import WhoAndWhenAdapter

register(OtlpAdapter())
register(NativeJsonlAdapter())
register(LabelsCsvAdapter())
register(LangSmithRunsAdapter())
register(OpenAIAgentsAdapter())
register(InspectEvalAdapter())
register(InspectJsonAdapter())
register(TrailTraceAdapter())
register(TrailAnnotationsAdapter())
register(LangfuseApiAdapter())
register(MessagesAdapter())
register(WhoAndWhenAdapter())

__all__ = ["adapters", "detect", "register", "supported_formats"]
