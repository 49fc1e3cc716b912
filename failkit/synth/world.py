"""The task population a :class:`~failkit.synth.config.World` fixes, drawn from its seed alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from failkit.synth.catalog import CORE_TOOLS
from failkit.synth.config import World

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ARG_INT_HIGH = 1_000_000_000
"""Argument integers (city, person, amount, … choices) are drawn below this."""


@dataclass(frozen=True)
class Population:
    """Tasks and runs, as arrays.

    Attributes:
        difficulty: per task, in [0, 1].
        n_rounds: tool rounds per task.
        tools: per task and round, the index of the core tool the round needs.
        ints: per task and round, three integers the arguments and results are made from.
        run_task: task of each run, runs in arrival order.
        run_trial: trial number of each run within its task (1-based).
        run_start_us: arrival time of each run, microseconds since the Unix epoch.
    """

    difficulty: np.ndarray
    n_rounds: np.ndarray
    tools: np.ndarray
    ints: np.ndarray
    run_task: np.ndarray
    run_trial: np.ndarray
    run_start_us: np.ndarray


def populate(world: World) -> Population:
    """Draw the task population and the run arrivals of a world (deterministic in its seed)."""
    rng = np.random.default_rng(world.seed)
    n, rounds = world.n_tasks, world.max_rounds
    difficulty = rng.beta(world.difficulty_a, world.difficulty_b, n)
    n_rounds = 1 + rng.binomial(rounds - 1, difficulty)
    tools = rng.integers(0, len(CORE_TOOLS), (n, rounds))
    ints = rng.integers(0, ARG_INT_HIGH, (n, rounds, 3))
    order = rng.permutation(world.n_runs)
    gaps = rng.exponential(60e6 / world.runs_per_minute, world.n_runs)
    origin = (world.start_time - EPOCH) // timedelta(microseconds=1)
    start_us = origin + np.cumsum(gaps).astype(np.int64)
    return Population(
        difficulty=difficulty,
        n_rounds=n_rounds,
        tools=tools,
        ints=ints,
        run_task=order // world.trials,
        run_trial=order % world.trials + 1,
        run_start_us=start_us,
    )
