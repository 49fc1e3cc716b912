"""failkit on Apache Spark: the heavy steps where the data lives, small tables in the notebook.

Needs the ``spark`` extra (``pip install 'failkit[spark]'``) and Java 17+. See
:mod:`failkit.spark.backend` (analyses) and :mod:`failkit.spark.ingest` (normalization) for
how the work is split.
"""

from failkit.spark.backend import SparkBackend
from failkit.spark.ingest import ingest_to_lake
from failkit.spark.session import java_available, local_session

__all__ = ["SparkBackend", "ingest_to_lake", "java_available", "local_session"]
