"""One local SparkSession for the Spark tests, skipped with the reason when it cannot start."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from failkit.spark.session import INSTALL_HINT, java_available


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """``local[2]``, 4 shuffle partitions, no UI; stopped after the session."""
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip(f"PySpark is not installed: {INSTALL_HINT}")
    if not java_available():
        pytest.skip(f"no Java runtime for Spark: {INSTALL_HINT}")
    from failkit.spark import local_session

    session = local_session(cores=2, shuffle_partitions=4, driver_memory="1g")
    yield session
    session.stop()
