"""A local SparkSession for failkit, and the checks that PySpark and Java are there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from failkit.errors import FailkitError

INSTALL_HINT = (
    "install the Spark extra (pip install 'failkit[spark]') and a Java 17+ runtime "
    "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
)


def java_available() -> bool:
    """Whether a ``java`` runtime that Spark can start is on the PATH (or in JAVA_HOME)."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return False
    done = subprocess.run([java, "-version"], capture_output=True, check=False, timeout=60)
    return done.returncode == 0


def require_pyspark() -> Any:
    """The ``pyspark`` module.

    Raises:
        FailkitError: PySpark is not installed (the message says how to install it).
    """
    try:
        import pyspark
    except ImportError as exc:
        raise FailkitError(f"failkit's Spark backend needs PySpark: {INSTALL_HINT}") from exc
    return pyspark


def local_session(
    *,
    cores: int = 2,
    shuffle_partitions: int = 4,
    driver_memory: str = "2g",
    max_result_size: str = "1g",
) -> Any:
    """A local-mode SparkSession set up for failkit (UTC, Arrow, no UI), for tests and laptops.

    On a cluster, build the session as usual and pass it to
    :class:`~failkit.spark.SparkBackend`; it needs the same settings:
    ``spark.sql.session.timeZone=UTC`` and executors with ``failkit`` and ``duckdb`` installed.

    Args:
        cores: worker threads (``local[cores]``).
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (a few per core).
        driver_memory: ``spark.driver.memory`` (the driver is the executor in local mode).
        max_result_size: ``spark.driver.maxResultSize``, the most a collect may bring back
            (failkit's own analyses bring back aggregates only; :meth:`SparkBackend.collect_steps`
            brings back every step).

    Raises:
        FailkitError: PySpark or Java is missing.
    """
    require_pyspark()
    if not java_available():
        raise FailkitError(f"Spark needs a Java runtime and none was found: {INSTALL_HINT}")
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (the one that has failkit and duckdb).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("failkit")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.maxResultSize", max_result_size)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark
