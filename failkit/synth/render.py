"""Text of the simulated spans, and their two encodings: OTLP JSON and failkit JSONL.

Both encodings of a span are written from the same strings, so they describe the same world
with the same ids, times and text. JSON is assembled from pre-escaped pieces with one
``%`` template per span: variable strings go through the C JSON string encoder once, and
text that runs of one task share (arguments, results, messages) is made once and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from failkit.synth.catalog import MODE_INDEX, MODELS, MODES, NUMBER_WORDS, Tool, toolset
from failkit.synth.config import AgentDesign, World
from failkit.synth.engine import (
    FEEDBACK_HUMAN,
    NO_MODE,
    ROLE_CALL,
    ROLE_FINAL,
    ROLE_HUMAN,
    ROLE_PLAN,
    ROLE_ROOT,
    ROLE_TOOL,
    Simulation,
)
from failkit.synth.world import Population

AGENT_NAME = "travel_agent"
AGENT_ID = "asst_travel_001"
RESOURCE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("telemetry.sdk.language", "python"),
    ("telemetry.sdk.name", "opentelemetry"),
    ("telemetry.sdk.version", "1.38.0"),
    ("service.name", "travel-agent"),
    ("service.version", "0.1.0"),
    ("deployment.environment.name", "synth"),
)
SCOPE = ("failkit.synth", "0.1.0")
PYDANTIC_ERRORS_URL = "https://errors.pydantic.dev/2.11/v/"
HTTP_STATUS_URL = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/"
HTTP_ERRORS = {"rate_limit": (429, "Too Many Requests"), "permission_denied": (403, "Forbidden")}
SERVER_ERRORS = (
    (500, "Internal Server Error"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Gateway Timeout"),
)
FEEDBACK_TEXT = {
    "unknown_tool": "Error: that tool does not exist; call one of the available tools.",
    "missing_argument": "Error: the arguments did not validate; fix them and call again.",
    "invalid_argument_type": "Error: the arguments did not validate; fix them and call again.",
}
REVIEWER_TEXT = "Reviewer: this call is not right; please correct it before it runs."

_esc = json.JSONEncoder().encode
_compact = json.JSONEncoder(separators=(",", ":")).encode
_MODE_NAMES = [m.name for m in MODES]
_UNKNOWN_TOOL = MODE_INDEX["unknown_tool"]
_UNPARSEABLE = MODE_INDEX["unparseable_output"]
_HALLUCINATION = MODE_INDEX["hallucination"]

_STACK_HEAD = "Traceback (most recent call last):\n"
_FRAMES = {
    "llm": (
        '  File "/srv/agent/agent/loop.py", line 88, in step\n'
        "    response = await self.client.chat.completions.create(**request)\n"
        '  File "/srv/agent/.venv/lib/python3.12/site-packages/openai/_base_client.py", '
        "line 1594, in request\n"
        "    raise self._make_status_error_from_response(err.response) from None\n"
    ),
    "lookup": (
        '  File "/srv/agent/agent/loop.py", line 131, in run_tool_calls\n'
        "    tool = self.tools.lookup(call.name)\n"
        '  File "/srv/agent/agent/tools.py", line 42, in lookup\n'
        "    raise ModelBehaviorError(f\"Tool '{name}' not found; available: {names}\")\n"
    ),
    "validation": (
        '  File "/srv/agent/agent/loop.py", line 137, in run_tool_calls\n'
        "    args = tool.args_model.model_validate_json(call.arguments)\n"
    ),
    "timeout": (
        '  File "/srv/agent/agent/loop.py", line 142, in run_tool_calls\n'
        "    result = await tool.invoke(args)\n"
        '  File "/srv/agent/tools/http.py", line 61, in request\n'
        '    raise TimeoutError(f"request to {url} timed out after {timeout}s") from exc\n'
    ),
    "http": (
        '  File "/srv/agent/agent/loop.py", line 142, in run_tool_calls\n'
        "    result = await tool.invoke(args)\n"
        '  File "/srv/agent/tools/http.py", line 57, in request\n'
        "    response.raise_for_status()\n"
    ),
    "parse": (
        '  File "/srv/agent/agent/loop.py", line 164, in answer\n'
        "    return Answer.model_validate(json.loads(message.content))\n"
        '  File "/usr/lib/python3.12/json/decoder.py", line 353, in raw_decode\n'
        "    obj, end = self.scan_once(s, idx)\n"
    ),
}
_MODE_FRAMES = {
    "context_length_exceeded": "llm",
    "unknown_tool": "lookup",
    "missing_argument": "validation",
    "invalid_argument_type": "validation",
    "timeout": "timeout",
    "rate_limit": "http",
    "server_error": "http",
    "permission_denied": "http",
    "unparseable_output": "parse",
}


# --- JSON pieces ---------------------------------------------------------------------------


def _kv(key: str, value: str) -> str:
    return '{"key":"' + key + '","value":' + value + "}"


def _str(key: str, escaped: str) -> str:
    return _kv(key, '{"stringValue":' + escaped + "}")


def _int(key: str, value: str) -> str:
    return _kv(key, '{"intValue":"' + value + '"}')


def _double(key: str, value: str) -> str:
    return _kv(key, '{"doubleValue":' + value + "}")


def _message(role: str, part: str, finish: str | None = None) -> str:
    """One GenAI semconv message as JSON text; ``part`` is one JSON part object."""
    tail = ',"finish_reason":"' + finish + '"' if finish else ""
    return '{"role":"' + role + '","parts":[' + part + "]" + tail + "}"


def _text_part(text: str) -> str:
    return '{"type":"text","content":' + _esc(text) + "}"


def _template(text: str) -> str:
    """JSON text with ``%s`` slots, for ``%`` formatting (no other ``%`` may occur)."""
    if text.replace("%s", "").count("%"):
        raise AssertionError(f"stray % in template {text!r}")  # pragma: no cover
    return text


OTLP_SPAN = _template(
    '{"traceId":"%s","spanId":"%s"%s,"flags":256,"name":"%s","kind":%s,'
    '"startTimeUnixNano":"%s","endTimeUnixNano":"%s","attributes":[%s]%s,"status":%s}'
)
NATIVE_SPAN = _template(
    '{"type":"span","trace_id":"%s","span_id":"%s","parent_id":%s,"name":"%s","kind":"%s",'
    '"start_time":"%s","end_time":"%s","status":"%s","error_type":%s,"error_message":%s,'
    '%s,"events":%s}'
)
NATIVE_FIELDS = _template(
    '"model":%s,"provider":%s,"tool_name":%s,"tool_call_id":%s,"tool_args":%s,"input":%s,'
    '"output":%s,"tokens_in":%s,"tokens_out":%s,"cost_usd":%s,"confidence":%s,"attributes":%s'
)
"""The middle of a failkit JSONL span line, filled per role."""
_LINE_HEAD = _template(
    '{"resourceSpans":[{"resource":{"attributes":[%s]},"scopeSpans":[{"scope":'
    '{"name":"%s","version":"%s"},"spans":['
)
OTLP_LINE_HEAD = _LINE_HEAD % (",".join(_str(k, _esc(v)) for k, v in RESOURCE_ATTRIBUTES), *SCOPE)
OTLP_LINE_TAIL = "]}]}]}"
_TOOL_ATTRS = _template(
    ",".join(
        [
            _str("gen_ai.operation.name", '"execute_tool"'),
            _str("gen_ai.tool.name", '"%s"'),
            _str("gen_ai.tool.type", '"function"'),
            _str("gen_ai.tool.call.id", '"%s"'),
            _str("gen_ai.tool.call.arguments", "%s"),
        ]
    )
)
_TOOL_RESULT = "," + _str("gen_ai.tool.call.result", "%s")
_HUMAN_ATTRS = _template(
    ",".join(
        [
            _str("failkit.span.kind", '"human"'),
            _str("gen_ai.tool.name", '"%s"'),
            _str("gen_ai.tool.call.id", '"%s"'),
            _str("gen_ai.tool.call.arguments", "%s"),
            _str("failkit.human.decision", '"%s"'),
            _double("failkit.cost_usd", "%s"),
        ]
    )
)
_TOOL_FIELDS = NATIVE_FIELDS % (
    ("null", "null", "%s", "%s", "%s", "%s", "%s") + ("null",) * 4 + ("{}",)
)
_HUMAN_FIELDS = NATIVE_FIELDS % (
    ("null", "null", "%s", "%s", "%s", "%s")
    + ("null",) * 3
    + ("%s", "null")
    + ('{"failkit.span.kind":"human","failkit.human.decision":"%s"}',)
)
_CONFIDENCE = "," + _double("failkit.confidence", "%s")


RUN_LINES = _template(
    '{"type":"trace","trace_id":"%s","name":"invoke_agent ' + AGENT_NAME + '","task_id":"%s",'
    '"session_id":"%s"}\n{"type":"label","trace_id":"%s","name":"outcome","value":"%s",'
    '"source":"synth"}'
)


def run_lines(trace_id: str, task_id: str, session_id: str, outcome: str) -> str:
    """The failkit JSONL ``trace`` line and outcome ``label`` line of a run (no newline)."""
    return RUN_LINES % (trace_id, task_id, session_id, trace_id, outcome)


def label_line(label: dict[str, Any]) -> str:
    """A failkit JSONL ``label`` line (no newline) of a label row (missing values as null)."""
    fields = {k: (None if v is None or v != v else v) for k, v in label.items()}
    return json.dumps({"type": "label", **fields}, separators=(",", ":"), ensure_ascii=False)


def otlp_line(spans: list[str]) -> str:
    """One exporter batch: a whole ``resourceSpans`` object, without the newline."""
    return OTLP_LINE_HEAD + ",".join(spans) + OTLP_LINE_TAIL


def misspell(name: str) -> str:
    """The tool name an LLM gets wrong: the first vowel after the verb dropped."""
    start = name.find("_") + 1
    for i in range(start, len(name)):
        if name[i] in "aeiou":
            return name[:i] + name[i + 1 :]
    return name + "s"


def _iso(us: np.ndarray) -> list[str]:
    """ISO 8601 UTC times with microseconds and ``Z``."""
    return np.datetime_as_string(us.astype("datetime64[us]"), unit="us", timezone="UTC").tolist()


@dataclass(frozen=True)
class ErrorText:
    """An exception as logged: ``error.type``, exception event fields."""

    error_type: str
    exception_type: str
    message: str
    stacktrace: str

    @property
    def status_message(self) -> str:
        """``ShortType: message``, as OTel SDKs write it into the span status."""
        return self.exception_type.rsplit(".", 1)[-1] + ": " + self.message

    def otlp(self, end_ns: str) -> tuple[str, str, str]:
        """(extra attribute, events member, status) of an OTLP span."""
        attributes = ",".join(
            [
                _str("exception.type", _esc(self.exception_type)),
                _str("exception.message", _esc(self.message)),
                _str("exception.stacktrace", _esc(self.stacktrace)),
                _str("exception.escaped", '"True"'),
            ]
        )
        events = _OTLP_EXCEPTION % (end_ns, attributes)
        status = '{"message":' + _esc(self.status_message) + ',"code":2}'
        return "," + _str("error.type", _esc(self.error_type)), events, status

    def native(self, end_iso: str) -> tuple[str, str, str, str]:
        """(status, error_type, error_message, events) of a failkit JSONL span."""
        attributes = (
            f'{{"exception.type":{_esc(self.exception_type)},'
            f'"exception.message":{_esc(self.message)},'
            f'"exception.stacktrace":{_esc(self.stacktrace)},"exception.escaped":"True"}}'
        )
        events = f'[{{"name":"exception","time":"{end_iso}","attributes":{attributes}}}]'
        return "error", _esc(self.error_type), _esc(self.status_message), events


_OTLP_OK = OTLP_SPAN % (("%s",) * 8 + ("", "{}"))
_NATIVE_OK = NATIVE_SPAN % (("%s",) * 7 + ("unset", "null", "null", "%s", "[]"))
"""Span templates of spans without an error."""
_OTLP_EXCEPTION = _template(
    ',"events":[{"timeUnixNano":"%s","name":"exception","attributes":[%s]}]'
)


class TaskText:
    """What the tasks say: arguments, results, requests, plans, answers (cached per task)."""

    def __init__(self, pop: Population, tools: tuple[Tool, ...]) -> None:
        self.pop, self.tools = pop, tools
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _ints(self, task: int, r: int) -> tuple[int, int, int]:
        a, b, c = self.pop.ints[task, r].tolist()
        return a, b, c

    def args(self, task: int, r: int, tool: int, mode: int) -> dict[str, Any]:
        """Arguments the LLM wrote for ``tool`` in round ``r``, shaped by its mistake ``mode``."""
        key = ("args", task, r, tool, mode)
        found = self._cache.get(key)
        if found is not None:
            return found
        t = self.tools[tool]
        a, b, c = self._ints(task, r)
        args = t.args(a, b, c)
        first, kind = t.fields[0]
        name = _MODE_NAMES[mode] if mode != NO_MODE else ""
        if name == "missing_argument":
            del args[first]
        elif name == "invalid_argument_type":
            args[first] = [args[first]] if kind == "str" else NUMBER_WORDS[a % len(NUMBER_WORDS)]
        elif name == "wrong_argument_value":
            other = t.args(a + 7, b + 7, c + 7)[first]
            args[first] = other if other != args[first] else f"{other} (2)"
        self._cache[key] = args
        return args

    def args_json(self, task: int, r: int, tool: int, mode: int) -> str:
        """The arguments as compact JSON text."""
        key = ("args_json", task, r, tool, mode)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _compact(self.args(task, r, tool, mode))
        return found

    def result_json(self, task: int, r: int, tool: int) -> str:
        """What a successful call of ``tool`` in round ``r`` returned, as JSON text."""
        key = ("result", task, r, tool)
        found = self._cache.get(key)
        if found is None:
            a, b, _ = self._ints(task, r)
            found = self._cache[key] = _compact(self.tools[tool].result(a, b))
        return found

    def phrase(self, task: int, r: int, mode: int = NO_MODE) -> str:
        """How the request phrases round ``r`` (with wrong values for a wrong answer)."""
        tool = int(self.pop.tools[task, r])
        return self.tools[tool].phrase.format(**self.args(task, r, tool, mode))

    def request(self, task: int) -> str:
        """The user's request."""
        key = ("request", task)
        found = self._cache.get(key)
        if found is None:
            phrases = [self.phrase(task, r) for r in range(int(self.pop.n_rounds[task]))]
            found = self._cache[key] = "Please " + ", then ".join(phrases) + "."
        return found

    def plan(self, task: int, bad: bool) -> str:
        """The plan the planning call wrote (a bad plan forgets the last step)."""
        rounds = int(self.pop.n_rounds[task]) - int(bad)
        steps = [self.tools[t].name for t in self.pop.tools[task, :rounds].tolist()]
        if not steps:
            return "Plan: answer directly."
        return "Plan: " + " ".join(f"{i}. {s}" for i, s in enumerate(steps, 1))

    def summary(self, task: int, mode: int, var: int) -> str:
        """What the answer says; a wrong answer misstates the last step, a hallucination adds."""
        last = int(self.pop.n_rounds[task]) - 1
        phrases = [self.phrase(task, r) for r in range(last + 1)]
        if mode == MODE_INDEX["wrong_answer"]:
            phrases[-1] = self.phrase(task, last, MODE_INDEX["wrong_argument_value"])
        text = "Done: " + "; ".join(phrases) + "."
        if mode == _HALLUCINATION:
            text += f" Confirmation code ZX-{var % 10000:04d} was sent by SMS."
        return text

    def answer(self, task: int, mode: int, var: int) -> str:
        """The answer's content: a JSON object, or JSON missing a comma when unparseable."""
        if mode == _UNPARSEABLE:
            return '{"summary":' + _esc(self.summary(task, NO_MODE, var)) + ' "status":"done"}'
        return '{"status":"done","summary":' + _esc(self.summary(task, mode, var)) + "}"


@dataclass
class _Spans:
    """Role-specific parts of a chunk's spans, filled by position by the role encoders.

    ``fields`` holds the failkit JSONL values from ``model`` to ``attributes`` as JSON text.
    """

    name: list[str]
    attrs: list[str]
    fields: list[str]
    otlp: bool
    native: bool


_KINDS = {
    ROLE_ROOT: ("agent", "1"),
    ROLE_PLAN: ("llm", "3"),
    ROLE_CALL: ("llm", "3"),
    ROLE_TOOL: ("tool", "1"),
    ROLE_HUMAN: ("human", "1"),
    ROLE_FINAL: ("llm", "3"),
}
"""failkit kind and OTLP span kind (1 internal, 3 client) of each role."""


def _floats(values: np.ndarray) -> list[str]:
    """Shortest round-trip text of floats; ``null`` for NaN."""
    return ["null" if x != x else repr(x) for x in values.tolist()]


class Renderer:
    """Encodes simulated span rows as OTLP span objects and failkit JSONL span lines."""

    def __init__(
        self,
        world: World,
        design: AgentDesign,
        pop: Population,
        sim: Simulation,
        trace_ids: list[str],
        conversation_ids: list[str],
        call_ids: list[str],
        task_ids: list[str],
    ) -> None:
        self.world, self.sim, self.pop = world, sim, pop
        self.cols = sim.spans
        self.tools = toolset(design.n_tools)
        self.text = TaskText(pop, self.tools)
        self.trace_ids = np.array(trace_ids, dtype=object)
        self.conversation_ids = np.array(conversation_ids, dtype=object)
        self.call_ids = np.array(call_ids, dtype=object)
        self.task_ids = task_ids
        self._available = ", ".join(t.name for t in self.tools)
        self._cache: dict[tuple[Any, ...], str] = {}
        self._call_parts_cache: dict[tuple[int, ...], tuple[str, str, str]] = {}
        model = MODELS[design.model]
        self._model = _esc(design.model)
        self._response_model = _esc(model.response_model)
        self._provider = _esc(model.provider)
        self._llm_name = "chat " + design.model
        head = [
            _str("gen_ai.operation.name", '"chat"'),
            _str("gen_ai.provider.name", self._provider),
            _str("gen_ai.request.model", self._model),
            _str("gen_ai.conversation.id", '"%s"'),
            _str("gen_ai.input.messages", "%s"),
        ]
        self._llm_rejected = _template(",".join(head))
        finish = '{"arrayValue":{"values":[{"stringValue":"%s"}]}}'
        self._llm_attrs = _template(
            ",".join(
                [
                    *head,
                    _str("gen_ai.response.model", self._response_model),
                    _kv("gen_ai.response.finish_reasons", finish),
                    _int("gen_ai.usage.input_tokens", "%s"),
                    _int("gen_ai.usage.output_tokens", "%s"),
                    _str("gen_ai.output.messages", "%s"),
                    _double("failkit.cost_usd", "%s"),
                ]
            )
        )
        self._root_attrs = _template(
            ",".join(
                [
                    _str("gen_ai.operation.name", '"invoke_agent"'),
                    _str("gen_ai.provider.name", self._provider),
                    _str("gen_ai.agent.name", '"' + AGENT_NAME + '"'),
                    _str("gen_ai.agent.id", '"' + AGENT_ID + '"'),
                    _str("gen_ai.request.model", self._model),
                    _str("gen_ai.conversation.id", '"%s"'),
                    _str("failkit.task_id", '"%s"'),
                    _str("gen_ai.input.messages", "%s"),
                ]
            )
        )
        llm = (self._model, self._provider, "null", "null", "null", "%s")
        self._llm_rejected_fields = NATIVE_FIELDS % (llm + ("null",) * 4 + ("%s", "{}"))
        self._llm_fields = NATIVE_FIELDS % (
            (self._response_model, *llm[1:]) + ("%s",) * 5 + ("{}",)
        )
        root_attrs = (
            '{"failkit.task_id":"%s","gen_ai.agent.name":"' + AGENT_NAME + '",'
            '"gen_ai.conversation.id":"%s"}'
        )
        self._root_fields = NATIVE_FIELDS % (llm + ("%s",) + ("null",) * 4 + (root_attrs,))
        # A tool-choice call's escaped output messages around the call id.
        self._call_out_head = _esc('[{"role":"assistant","parts":[{"type":"tool_call","id":"')[:-1]
        self._encoders = {
            ROLE_ROOT: self._roots,
            ROLE_PLAN: self._plans,
            ROLE_CALL: self._calls,
            ROLE_TOOL: self._tools,
            ROLE_HUMAN: self._humans,
            ROLE_FINAL: self._answers,
        }

    def encode(
        self,
        rows: np.ndarray,
        span_ids: list[str],
        parent_ids: list[str | None],
        *,
        otlp: bool = True,
        native: bool = True,
    ) -> tuple[list[str], list[str]]:
        """OTLP span objects and failkit JSONL span lines (no newline) of ``rows``, in order.

        A list not asked for is empty.
        """
        c = self.cols
        n = rows.size
        parts = _Spans([""] * n, [""] * n, [""] * n, otlp, native)
        role = c["role"][rows]
        for code, encoder in self._encoders.items():
            pos = np.flatnonzero(role == code)
            if pos.size:
                encoder(parts, pos.tolist(), rows[pos])
        errors = {p: self.error(int(rows[p])) for p in np.flatnonzero(c["error"][rows]).tolist()}
        trace = self.trace_ids[c["run"][rows]].tolist()
        kinds = [_KINDS[r] for r in role.tolist()]
        start, end = c["start"][rows], c["end"][rows]
        otlp_spans, native_spans = [], []
        if otlp:
            parents = [',"parentSpanId":"' + p + '"' if p else "" for p in parent_ids]
            start_ns = (start * 1000).astype(str).tolist()
            end_ns = (end * 1000).astype(str).tolist()
            head = (trace, span_ids, parents, parts.name, [k[1] for k in kinds], start_ns, end_ns)
            otlp_spans = [_OTLP_OK % v for v in zip(*head, parts.attrs, strict=True)]
            for p, error in errors.items():
                attr, events, status = error.otlp(end_ns[p])
                common = [h[p] for h in head]
                otlp_spans[p] = OTLP_SPAN % (*common, parts.attrs[p] + attr, events, status)
        if native:
            parents = ['"' + p + '"' if p else "null" for p in parent_ids]
            end_iso = _iso(end)
            head = (
                trace,
                span_ids,
                parents,
                parts.name,
                [k[0] for k in kinds],
                _iso(start),
                end_iso,
            )
            native_spans = [_NATIVE_OK % v for v in zip(*head, parts.fields, strict=True)]
            for p, error in errors.items():
                status, error_type, message, events = error.native(end_iso[p])
                common = [h[p] for h in head]
                fields = parts.fields[p]
                native_spans[p] = NATIVE_SPAN % (
                    *common,
                    status,
                    error_type,
                    message,
                    fields,
                    events,
                )
        return otlp_spans, native_spans

    # --- messages (escaped JSON text, cached) ---------------------------------------------

    def _request_messages(self, task: int) -> str:
        key = ("request", task)
        found = self._cache.get(key)
        if found is None:
            msg = "[" + _message("user", _text_part(self.text.request(task))) + "]"
            found = self._cache[key] = _esc(msg)
        return found

    def _answer_messages(self, task: int, mode: int, var: int) -> str:
        key = ("answer", task, mode, var if mode == _HALLUCINATION else 0)
        found = self._cache.get(key)
        if found is None:
            content = self.text.answer(task, mode, var)
            found = self._cache[key] = _esc(
                "[" + _message("assistant", _text_part(content), "stop") + "]"
            )
        return found

    def _plan_messages(self, task: int, mode: int) -> str | None:
        if mode == MODE_INDEX["context_length_exceeded"]:
            return None
        key = ("plan", task, mode)
        found = self._cache.get(key)
        if found is None:
            text = self.text.plan(task, mode != NO_MODE)
            found = self._cache[key] = _esc(
                "[" + _message("assistant", _text_part(text), "stop") + "]"
            )
        return found

    def _tool_response(self, task: int, r: int) -> str:
        result = self.text.result_json(task, r, int(self.pop.tools[task, r]))
        return _message("tool", '{"type":"tool_call_response","response":' + result + "}")

    def _call_input(self, task: int, r: int, feedback: int) -> str:
        """What a tool-choice call was sent: the newest message of the conversation."""
        key = ("call_in", task, r, feedback)
        found = self._cache.get(key)
        if found is None:
            if feedback == FEEDBACK_HUMAN:
                last = _message("user", _text_part(REVIEWER_TEXT))
            elif feedback != NO_MODE:
                last = _message(
                    "tool",
                    '{"type":"tool_call_response","response":'
                    + _esc(FEEDBACK_TEXT[_MODE_NAMES[feedback]])
                    + "}",
                )
            elif r == 0:
                last = _message("assistant", _text_part(self.text.plan(task, False)))
            else:
                last = self._tool_response(task, r - 1)
            found = self._cache[key] = _esc("[" + last + "]")
        return found

    def _call_output_tail(self, task: int, r: int, tool: int, mode: int) -> str:
        """Escaped output messages of a tool-choice call after its call id."""
        key = ("call_out", task, r, tool, mode)
        found = self._cache.get(key)
        if found is None:
            name = self.tools[tool].name
            if mode == _UNKNOWN_TOOL:
                name = misspell(name)
            tail = (
                '","name":"'
                + name
                + '","arguments":'
                + self.text.args_json(task, r, tool, mode)
                + '}],"finish_reason":"tool_call"}]'
            )
            found = self._cache[key] = _esc(tail)[1:]
        return found

    def _result(self, task: int, r: int, tool: int) -> str:
        """Escaped result of a successful call."""
        key = ("result", task, r, tool)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _esc(self.text.result_json(task, r, tool))
        return found

    def _answer_input(self, task: int) -> str:
        key = ("answer_in", task)
        found = self._cache.get(key)
        if found is None:
            last = int(self.pop.n_rounds[task]) - 1
            found = self._cache[key] = _esc("[" + self._tool_response(task, last) + "]")
        return found

    # --- spans by role ---------------------------------------------------------------------

    def _tasks(self, rows: np.ndarray) -> list[int]:
        return self.pop.run_task[self.cols["run"][rows]].tolist()

    def _llm_spans(
        self,
        out: _Spans,
        pos: list[int],
        rows: np.ndarray,
        inputs: list[str],
        outputs: list[str | None],
        finish: str,
    ) -> None:
        """Fill chat spans; an output of None is a rejected request (no response, no usage)."""
        c = self.cols
        conversation = self.conversation_ids[c["run"][rows]].tolist()
        confidence = _floats(c["confidence"][rows])
        cost = _floats(c["cost"][rows])
        tokens_in = c["tokens_in"][rows].tolist()
        tokens_out = c["tokens_out"][rows].tolist()
        for p, conv, input_j, output_j, t_in, t_out, usd, conf in zip(
            pos,
            conversation,
            inputs,
            outputs,
            tokens_in,
            tokens_out,
            cost,
            confidence,
            strict=True,
        ):
            out.name[p] = self._llm_name
            if out.otlp:
                extra = _CONFIDENCE % conf if conf != "null" else ""
                if output_j is None:
                    out.attrs[p] = self._llm_rejected % (conv, input_j) + extra
                else:
                    attr_values = (conv, input_j, finish, t_in, t_out, output_j, usd)
                    out.attrs[p] = self._llm_attrs % attr_values + extra
            if out.native:
                if output_j is None:
                    out.fields[p] = self._llm_rejected_fields % (input_j, conf)
                else:
                    field_values = (input_j, output_j, t_in, t_out, usd, conf)
                    out.fields[p] = self._llm_fields % field_values

    def _plans(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        tasks = self._tasks(rows)
        modes = self.cols["mode"][rows].tolist()
        inputs = [self._request_messages(t) for t in tasks]
        outputs = [self._plan_messages(t, m) for t, m in zip(tasks, modes, strict=True)]
        self._llm_spans(out, pos, rows, inputs, outputs, "stop")

    def _calls(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        c = self.cols
        keys = list(
            zip(
                self._tasks(rows),
                c["round"][rows].tolist(),
                c["tool"][rows].tolist(),
                c["args_mode"][rows].tolist(),
                c["feedback"][rows].tolist(),
                self.call_ids[c["call"][rows]].tolist(),
                strict=True,
            )
        )
        inputs = [self._call_input(t, r, f) for t, r, _, _, f, _ in keys]
        head = self._call_out_head
        outputs: list[str | None] = [
            head + call + self._call_output_tail(t, r, tool, m) for t, r, tool, m, _, call in keys
        ]
        self._llm_spans(out, pos, rows, inputs, outputs, "tool_calls")

    def _answers(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        c = self.cols
        tasks = self._tasks(rows)
        inputs = [self._answer_input(t) for t in tasks]
        outputs: list[str | None] = [
            self._answer_messages(t, m, v)
            for t, m, v in zip(
                tasks, c["mode"][rows].tolist(), c["var"][rows].tolist(), strict=True
            )
        ]
        self._llm_spans(out, pos, rows, inputs, outputs, "stop")

    def _call_parts(self, rows: np.ndarray) -> list[tuple[Any, ...]]:
        """Per tool or human span: (task, round, tool, name as called, call id, args, escaped)."""
        c = self.cols
        parts = []
        for task, r, tool, mode, call in zip(
            self._tasks(rows),
            c["round"][rows].tolist(),
            c["tool"][rows].tolist(),
            c["args_mode"][rows].tolist(),
            self.call_ids[c["call"][rows]].tolist(),
            strict=True,
        ):
            key = (task, r, tool, mode)
            found = self._call_parts_cache.get(key)
            if found is None:
                name = self.tools[tool].name
                args = self.text.args_json(task, r, tool, mode)
                found = self._call_parts_cache[key] = (
                    misspell(name) if mode == _UNKNOWN_TOOL else name,
                    args,
                    _esc(args),
                )
            parts.append((task, r, tool, *found, call))
        return parts

    def _tools(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        failed = self.cols["error"][rows].tolist()
        for p, error, (task, r, tool, name, args, args_j, call) in zip(
            pos, failed, self._call_parts(rows), strict=True
        ):
            result = "null" if error else self._result(task, r, tool)
            out.name[p] = "execute_tool " + name
            if out.otlp:
                attrs = _TOOL_ATTRS % (name, call, args_j)
                out.attrs[p] = attrs + _TOOL_RESULT % result if not error else attrs
            if out.native:
                tool_j, call_j = '"' + name + '"', '"' + call + '"'
                out.fields[p] = _TOOL_FIELDS % (tool_j, call_j, args, args_j, result)

    def _humans(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        c = self.cols
        costs = _floats(c["cost"][rows])
        decisions = c["decision"][rows].tolist()
        for p, cost, decision, (_, _, _, name, args, args_j, call) in zip(
            pos, costs, decisions, self._call_parts(rows), strict=True
        ):
            verdict = "reject" if decision == 2 else "approve"
            out.name[p] = "human_review " + name
            out.attrs[p] = _HUMAN_ATTRS % (name, call, args_j, verdict, cost)
            tool_j, call_j = '"' + name + '"', '"' + call + '"'
            out.fields[p] = _HUMAN_FIELDS % (tool_j, call_j, args, args_j, cost, verdict)

    def _roots(self, out: _Spans, pos: list[int], rows: np.ndarray) -> None:
        c, sim = self.cols, self.sim
        for p, run in zip(pos, c["run"][rows].tolist(), strict=True):
            task = int(self.pop.run_task[run])
            conv, task_id = self.conversation_ids[run], self.task_ids[run]
            input_j = self._request_messages(task)
            output = "null"
            answer = int(sim.answer_row[run])
            if answer >= 0:
                output = self._answer_messages(task, int(c["mode"][answer]), int(c["var"][answer]))
            out.name[p] = "invoke_agent " + AGENT_NAME
            if out.otlp:
                attrs = self._root_attrs % (conv, task_id, input_j)
                if answer >= 0:
                    attrs += "," + _str("gen_ai.output.messages", output)
                out.attrs[p] = attrs
            if out.native:
                out.fields[p] = self._root_fields % (input_j, output, task_id, conv)

    # --- errors ------------------------------------------------------------------------

    def error(self, row: int) -> ErrorText:
        """The exception span ``row`` recorded (a root records the one that ended its run)."""
        c, sim = self.cols, self.sim
        run = int(c["run"][row])
        if c["role"][row] == ROLE_ROOT:
            row = int(sim.death_row[run])
        mode = MODES[int(c["mode"][row])]
        task, r, tool = int(self.pop.run_task[run]), int(c["round"][row]), int(c["tool"][row])
        var = int(c["var"][row])
        error_type = mode.error_type or ""
        if mode.name == "context_length_exceeded":
            message = (
                "Error code: 400 - {'error': {'message': \"This model's maximum context length "
                f"is 128000 tokens. However, your messages resulted in {128001 + var % 40000} "
                "tokens. Please reduce the length of the messages.\", 'type': "
                "'invalid_request_error', 'param': 'messages', 'code': 'context_length_exceeded'}}"
            )
        elif mode.name == "unknown_tool":
            message = (
                f"Tool '{misspell(self.tools[tool].name)}' not found; available: {self._available}"
            )
        elif mode.name in ("missing_argument", "invalid_argument_type"):
            message = self._validation_message(task, r, tool, int(c["mode"][row]))
        elif mode.name == "unparseable_output":
            char = self.text.answer(task, _UNPARSEABLE, var).index(' "status"') + 1
            message = f"Expecting ',' delimiter: line 1 column {char + 1} (char {char})"
        else:
            tool_args = self.text.args(task, r, tool, int(c["args_mode"][row]))
            url = self.tools[tool].url(tool_args)
            if mode.name == "timeout":
                message = f"request to {url} timed out after {self.world.tool_timeout_s:g}s"
            else:
                code, phrase = HTTP_ERRORS.get(mode.name) or SERVER_ERRORS[var % len(SERVER_ERRORS)]
                side = "Client" if code < 500 else "Server"
                message = (
                    f"{side} error '{code} {phrase}' for url '{url}'\n"
                    f"For more information check: {HTTP_STATUS_URL}{code}"
                )
                error_type = str(code)
        exc = mode.exception_type or ""
        stack = _STACK_HEAD + _FRAMES[_MODE_FRAMES[mode.name]] + exc + ": " + message + "\n"
        return ErrorText(error_type, exc, message, stack)

    def _validation_message(self, task: int, r: int, tool: int, mode: int) -> str:
        t = self.tools[tool]
        args = self.text.args(task, r, tool, mode)
        first, kind = t.fields[0]
        if mode == MODE_INDEX["missing_argument"]:
            detail, code, shown, input_type = "Field required", "missing", repr(args), "dict"
        elif kind == "str":
            detail, code = "Input should be a valid string", "string_type"
            shown, input_type = repr(args[first]), "list"
        else:
            detail = "Input should be a valid number, unable to parse string as a number"
            code, shown, input_type = "float_parsing", repr(args[first]), "str"
        return (
            f"1 validation error for {t.args_model}\n{first}\n  {detail} [type={code}, "
            f"input_value={shown}, input_type={input_type}]\n"
            f"    For further information visit {PYDANTIC_ERRORS_URL}{code}"
        )
