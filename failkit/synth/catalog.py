"""What the synthetic agent can do and how it can go wrong: stages, failure modes, tools, models.

Everything here is fixed data; the knobs that change it live in :mod:`failkit.synth.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log2
from typing import Any

STAGES: tuple[str, ...] = (
    "planning",
    "tool_selection",
    "parameter_extraction",
    "tool_execution",
    "response_synthesis",
)
"""The decision stages a failure is attributed to (the ground truth's ``stage``)."""


@dataclass(frozen=True)
class Mode:
    """One way a stage fails.

    Attributes:
        name: mode name (ground truth ``failure_mode``).
        stage: stage the failure is attributed to.
        rate: probability per attempt at average difficulty, model quality 1 and
            :data:`REFERENCE_TOOLS` tools.
        detectable: an error is raised (else the failure is silent: wrong but plausible).
        transient: a repeat of the step can fix it (retries apply only to detectable ones).
        recovery: probability that one repeat of the failed step succeeds; a repeat that
            does not succeed fails the same way again.
        error_type: the ``error.type`` written on the failing span (None when silent).
        exception_type: the qualified exception class of the ``exception`` event.
        structured_away: cannot happen when the design uses structured outputs.
    """

    name: str
    stage: str
    rate: float
    detectable: bool
    transient: bool
    recovery: float
    error_type: str | None = None
    exception_type: str | None = None
    structured_away: bool = False


MODES: tuple[Mode, ...] = (
    Mode("bad_plan", "planning", 0.02, False, False, 0.0),
    Mode(
        "context_length_exceeded",
        "planning",
        0.005,
        True,
        False,
        0.0,
        "BadRequestError",
        "openai.BadRequestError",
    ),
    Mode(
        "unknown_tool",
        "tool_selection",
        0.01,
        True,
        True,
        0.8,
        "ModelBehaviorError",
        "agents.exceptions.ModelBehaviorError",
    ),
    Mode("wrong_tool", "tool_selection", 0.02, False, False, 0.8),
    Mode(
        "missing_argument",
        "parameter_extraction",
        0.015,
        True,
        True,
        0.7,
        "ValidationError",
        "pydantic_core._pydantic_core.ValidationError",
    ),
    Mode(
        "invalid_argument_type",
        "parameter_extraction",
        0.01,
        True,
        True,
        0.7,
        "ValidationError",
        "pydantic_core._pydantic_core.ValidationError",
        structured_away=True,
    ),
    Mode("wrong_argument_value", "parameter_extraction", 0.015, False, False, 0.8),
    Mode("timeout", "tool_execution", 0.03, True, True, 0.6, "TimeoutError", "TimeoutError"),
    Mode("rate_limit", "tool_execution", 0.02, True, True, 0.8, "429", "httpx.HTTPStatusError"),
    Mode("server_error", "tool_execution", 0.015, True, True, 0.7, "5xx", "httpx.HTTPStatusError"),
    Mode(
        "permission_denied",
        "tool_execution",
        0.005,
        True,
        False,
        0.0,
        "403",
        "httpx.HTTPStatusError",
    ),
    Mode(
        "unparseable_output",
        "response_synthesis",
        0.02,
        True,
        True,
        0.7,
        "JSONDecodeError",
        "json.decoder.JSONDecodeError",
        structured_away=True,
    ),
    Mode("wrong_answer", "response_synthesis", 0.03, False, False, 0.0),
    Mode("hallucination", "response_synthesis", 0.015, False, False, 0.0),
)
MODE_INDEX: dict[str, int] = {m.name: i for i, m in enumerate(MODES)}

CATCHABLE: tuple[str, ...] = (
    "wrong_tool",
    "missing_argument",
    "invalid_argument_type",
    "wrong_argument_value",
)
"""Modes of the tool-call step that a human reviewing the proposed call can catch."""

REFERENCE_TOOLS = 8
"""Tool count at which the tool-selection rates are the catalog rates."""


def tool_factor(n_tools: int) -> float:
    """Multiplier of the tool-selection rates for an agent given ``n_tools`` tools.

    ``1 + log2(n_tools / 8)``: 1 at 8 tools, 2 at 16, 3 at 32 (each doubling of the
    toolset adds the reference error rate once more).
    """
    return 1.0 + log2(n_tools / REFERENCE_TOOLS)


@dataclass(frozen=True)
class Model:
    """An LLM the agent can use: provider, response model name, USD per million tokens."""

    provider: str
    response_model: str
    usd_per_m_in: float
    usd_per_m_out: float


MODELS: dict[str, Model] = {
    "gpt-4o-mini": Model("openai", "gpt-4o-mini-2024-07-18", 0.15, 0.60),
    "gpt-4o": Model("openai", "gpt-4o-2024-08-06", 2.50, 10.00),
    "gpt-4.1": Model("openai", "gpt-4.1-2025-04-14", 2.00, 8.00),
    "claude-sonnet-4": Model("anthropic", "claude-sonnet-4-20250514", 3.00, 15.00),
}

CITIES = (
    "Paris",
    "Tokyo",
    "Berlin",
    "Lisbon",
    "Nairobi",
    "Lima",
    "Oslo",
    "Seoul",
    "Austin",
    "Cairo",
    "Dublin",
    "Hanoi",
    "Quito",
    "Perth",
    "Zurich",
    "Denver",
)
AIRPORTS = ("CDG", "NRT", "BER", "LIS", "NBO", "LIM", "OSL", "ICN", "AUS", "CAI", "DUB", "HAN")
AIRLINES = ("UA", "AF", "LH", "BA", "JL", "DL", "KL", "TP")
PEOPLE = (
    "Alice Smith",
    "Bob Jones",
    "Chen Wei",
    "Dana Cruz",
    "Emeka Obi",
    "Fatima Khan",
    "Goran Ilic",
    "Hana Sato",
    "Ivan Petrov",
    "Julia Rossi",
    "Kofi Mensah",
    "Lena Berg",
)
SUBJECTS = (
    "Your booking confirmation",
    "Itinerary update",
    "Payment receipt",
    "Refund processed",
    "Travel advisory",
    "Seat change",
)
REASONS = ("schedule change", "duplicate booking", "customer request", "illness", "visa issue")
CONDITIONS = ("sunny", "cloudy", "rain", "snow", "windy", "fog")
WORDS = ("invoice", "policy", "baggage", "refund", "upgrade", "lounge", "visa", "insurance")
NUMBER_WORDS = ("about forty", "twelve", "a hundred", "ninety-nine", "fifty-ish")


def _person(a: int) -> str:
    return PEOPLE[a % len(PEOPLE)]


def _email(a: int) -> str:
    first, last = _person(a).lower().split()
    return f"{first}.{last}@example.com"


def _booking(a: int) -> str:
    return f"BK-{10000 + a % 90000}"


def _flight(a: int) -> str:
    return f"{AIRLINES[a % len(AIRLINES)]}{100 + a % 8900}"


def _date(a: int) -> str:
    return f"2026-{1 + a % 12:02d}-{1 + a // 12 % 28:02d}"


@dataclass(frozen=True)
class Tool:
    """A tool the agent can call.

    Attributes:
        name: tool name (``gen_ai.tool.name``).
        idempotent: calling it twice does no harm (else a repeat is a duplicate side effect).
        fields: argument names and pydantic-ish types (``str`` or ``float``).
        phrase: how a task asks for it, formatted with the arguments.
        path: API path, formatted with the arguments (URLs in error messages).
        latency_s: median execution time.
    """

    name: str
    idempotent: bool
    fields: tuple[tuple[str, str], ...]
    phrase: str
    path: str
    latency_s: float

    @property
    def args_model(self) -> str:
        """Name of the pydantic model validating the arguments (in validation errors)."""
        return "".join(p.capitalize() for p in self.name.split("_")) + "Args"

    def args(self, a: int, b: int, c: int) -> dict[str, Any]:
        """The arguments a task asks for, made from three task integers."""
        return _ARGS.get(self.name, _generic_args)(self, a, b, c)

    def result(self, a: int, b: int) -> dict[str, Any]:
        """What a successful call returns."""
        return _RESULTS.get(self.name, _generic_result)(a, b)

    def url(self, args: dict[str, Any]) -> str:
        """The URL the tool requests for these arguments."""
        values = {k: str(v).replace(" ", "%20") for k, v in args.items()}
        for name, _ in self.fields:
            values.setdefault(name, "")
        return "https://api.example.com" + self.path.format(**values)


def _generic_args(tool: Tool, a: int, b: int, c: int) -> dict[str, Any]:
    (name, kind), *_ = tool.fields
    if kind == "float":
        return {name: float(a % 1000)}
    return {name: f"{WORDS[a % len(WORDS)]} {CITIES[b % len(CITIES)]}"}


def _generic_result(a: int, b: int) -> dict[str, Any]:
    return {"ok": True, "items": a % 7}


_ARGS = {
    "get_weather": lambda t, a, b, c: {"city": CITIES[a % len(CITIES)]},
    "search_flights": lambda t, a, b, c: {
        "origin": AIRPORTS[a % len(AIRPORTS)],
        "destination": AIRPORTS[(a + 1 + b % (len(AIRPORTS) - 1)) % len(AIRPORTS)],
        "date": _date(c),
    },
    "get_booking": lambda t, a, b, c: {"booking_id": _booking(a)},
    "lookup_customer": lambda t, a, b, c: {"email": _email(a)},
    "book_flight": lambda t, a, b, c: {"flight_id": _flight(b), "passenger": _person(a)},
    "send_email": lambda t, a, b, c: {"to": _email(a), "subject": SUBJECTS[b % len(SUBJECTS)]},
    "charge_card": lambda t, a, b, c: {
        "customer_id": f"cus_{a % 1000000:06d}",
        "amount_usd": round(20 + b % 98000 / 100, 2),
    },
    "cancel_booking": lambda t, a, b, c: {
        "booking_id": _booking(a),
        "reason": REASONS[b % len(REASONS)],
    },
}

_RESULTS = {
    "get_weather": lambda a, b: {
        "temp_c": a % 38 - 5,
        "conditions": CONDITIONS[b % len(CONDITIONS)],
    },
    "search_flights": lambda a, b: {"flights": [_flight(a), _flight(a + b % 97 + 1)]},
    "get_booking": lambda a, b: {"status": "confirmed", "flight_id": _flight(b)},
    "lookup_customer": lambda a, b: {"customer_id": f"cus_{b % 1000000:06d}", "tier": "gold"},
    "book_flight": lambda a, b: {"booking_id": _booking(b), "status": "confirmed"},
    "send_email": lambda a, b: {"message_id": f"msg_{a % 100000:05d}{b % 1000:03d}"},
    "charge_card": lambda a, b: {
        "charge_id": f"ch_{a % 100000:05d}{b % 1000:03d}",
        "status": "succeeded",
    },
    "cancel_booking": lambda a, b: {"status": "cancelled", "refund_usd": round(b % 50000 / 100, 2)},
}

CORE_TOOLS: tuple[Tool, ...] = (
    Tool(
        "get_weather",
        True,
        (("city", "str"),),
        "check the weather in {city}",
        "/weather/v1/current?city={city}",
        0.25,
    ),
    Tool(
        "search_flights",
        True,
        (("origin", "str"), ("destination", "str"), ("date", "str")),
        "find flights from {origin} to {destination} on {date}",
        "/air/v1/flights?from={origin}&to={destination}&date={date}",
        0.6,
    ),
    Tool(
        "get_booking",
        True,
        (("booking_id", "str"),),
        "look up booking {booking_id}",
        "/air/v1/bookings/{booking_id}",
        0.2,
    ),
    Tool(
        "lookup_customer",
        True,
        (("email", "str"),),
        "find the customer account of {email}",
        "/crm/v1/customers?email={email}",
        0.3,
    ),
    Tool(
        "book_flight",
        False,
        (("flight_id", "str"), ("passenger", "str")),
        "book flight {flight_id} for {passenger}",
        "/air/v1/flights/{flight_id}/book",
        0.8,
    ),
    Tool(
        "send_email",
        False,
        (("to", "str"), ("subject", "str")),
        "email {to} about '{subject}'",
        "/mail/v1/messages",
        0.4,
    ),
    Tool(
        "charge_card",
        False,
        (("customer_id", "str"), ("amount_usd", "float")),
        "charge customer {customer_id} {amount_usd} USD",
        "/pay/v1/customers/{customer_id}/charges",
        0.5,
    ),
    Tool(
        "cancel_booking",
        False,
        (("booking_id", "str"), ("reason", "str")),
        "cancel booking {booking_id} ({reason})",
        "/air/v1/bookings/{booking_id}/cancel",
        0.4,
    ),
)
"""Tools tasks need; every design has them (so ``n_tools >= len(CORE_TOOLS)``)."""

_EXTRA: tuple[tuple[str, bool, str, str], ...] = (
    ("get_forecast", True, "city", "str"),
    ("search_hotels", True, "city", "str"),
    ("get_exchange_rate", True, "currency", "str"),
    ("list_airports", True, "country", "str"),
    ("get_local_time", True, "timezone", "str"),
    ("translate_text", True, "text", "str"),
    ("search_docs", True, "query", "str"),
    ("post_message", False, "text", "str"),
    ("create_ticket", False, "title", "str"),
    ("update_profile", False, "field", "str"),
    ("get_seat_map", True, "flight_id", "str"),
    ("check_visa", True, "country", "str"),
    ("convert_units", True, "value", "float"),
    ("get_baggage_policy", True, "airline", "str"),
    ("delete_file", False, "path", "str"),
    ("get_news", True, "topic", "str"),
)


def toolset(n_tools: int) -> tuple[Tool, ...]:
    """The tools an agent with ``n_tools`` tools is given: the core ones, then distractors.

    Distractors beyond the named ones are called ``tool_09``, ``tool_10``, … (idempotent).
    """
    extra = [
        Tool(name, idem, ((field, kind),), "", f"/tools/v1/{name}?{field}={{{field}}}", 0.3)
        for name, idem, field, kind in _EXTRA
    ]
    extra += [
        Tool(f"tool_{i:02d}", True, (("query", "str"),), "", f"/tools/v1/tool_{i:02d}", 0.3)
        for i in range(len(CORE_TOOLS) + len(_EXTRA) + 1, n_tools + 1)
    ]
    return (CORE_TOOLS + tuple(extra))[:n_tools]
