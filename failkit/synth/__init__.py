"""A seeded synthetic agent: the project's own test world, with ground truth.

A :class:`World` fixes the tasks (difficulty, tool rounds, arguments, arrival times,
trials); an :class:`AgentDesign` fixes how the agent is built (tools, retries, human
checkpoints, structured outputs, confidence logging, per-stage model quality).
:func:`generate` runs the world under the design and returns a :class:`SynthResult`
with the ground truth as DataFrames; :meth:`SynthResult.write` writes OTLP JSON lines (as
the OpenTelemetry file exporter does), failkit JSONL, outcome labels and ground-truth CSVs.

The model, in short:

- A run is an ``invoke_agent`` root span over a planning ``chat`` call, then per tool round
  a ``chat`` call that picks a tool and writes its arguments (``tool_selection`` and
  ``parameter_extraction``), an optional ``human`` review, the ``execute_tool`` span, and
  finally a ``chat`` call that writes the answer (``response_synthesis``).
- Each attempt of a step fails in one of the stage's modes (``catalog.MODES``) with
  probability ``rate * difficulty / mean difficulty * model_quality[stage]``; tool
  selection also scales with ``catalog.tool_factor(n_tools) = 1 + log2(n_tools / 8)``.
- Detectable transient failures are repeated up to ``max_attempts[stage]``; a repeat
  succeeds with the mode's ``recovery`` probability, else fails the same way. Tool errors
  repeat the same call (same id, same arguments); unknown tools and argument validation
  errors re-run the LLM step. Permanent or exhausted errors end the run: the exception is
  recorded on the failing span and on the root.
- Silent failures (wrong tool, wrong argument value, bad plan, wrong answer,
  hallucination) raise nothing; the run goes on and fails.
- A timed-out call of a non-idempotent tool may still have acted; if it is retried, the
  side effect can happen twice (``duplicated_side_effect``).
- A run succeeds iff no failure went unrecovered: an error span is not a failed run.

Example:
    >>> from failkit import synth
    >>> world = synth.World(n_tasks=50, trials=4, seed=1)
    >>> a = synth.generate(world, synth.AgentDesign(name="a"))
    >>> b = synth.generate(world, synth.AgentDesign(name="b", structured_outputs=True))
    >>> bool((a.truth["difficulty"] == b.truth["difficulty"]).all())
    True
"""

from failkit.synth.catalog import (
    CORE_TOOLS,
    MODELS,
    MODES,
    STAGES,
    Mode,
    Tool,
    tool_factor,
    toolset,
)
from failkit.synth.config import DEFAULT_MAX_ATTEMPTS, AgentDesign, World
from failkit.synth.result import (
    FILE_NAMES,
    FORMATS,
    SynthResult,
    generate,
    sample,
    write_sample,
)

__all__ = [
    "CORE_TOOLS",
    "DEFAULT_MAX_ATTEMPTS",
    "FILE_NAMES",
    "FORMATS",
    "MODELS",
    "MODES",
    "STAGES",
    "AgentDesign",
    "Mode",
    "SynthResult",
    "Tool",
    "World",
    "generate",
    "sample",
    "tool_factor",
    "toolset",
    "write_sample",
]
