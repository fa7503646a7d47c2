"""The few Scala values the Delta transaction API needs, built through py4j.

featurekit holds a Delta transaction open across the gate's decision (write the data files,
decide, then commit or drop them). Delta exposes that only in Scala, so this module is the
one place that speaks Scala collections and options; it is pinned to the delta-spark
version in ``pyproject.toml`` and covered by the write-mode tests.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Scala:
    """Converters between Python values and Scala ones for one session's JVM."""

    def __init__(self, spark: "SparkSession") -> None:
        self.jvm = spark._jvm  # type: ignore[attr-defined]
        self.session = spark._jsparkSession  # type: ignore[attr-defined]
        self._utils = self.jvm.org.apache.spark.api.python.PythonUtils
        self._converters = self.jvm.scala.jdk.javaapi.CollectionConverters

    def seq(self, items: list[Any]) -> Any:
        return self._utils.toSeq(list(items))

    def map(self, items: dict[str, str]) -> Any:
        return self._utils.toScalaMap({str(k): str(v) for k, v in items.items()})

    def some(self, value: Any) -> Any:
        return self.jvm.scala.Option.apply(value)

    def none(self) -> Any:
        return self.jvm.scala.Option.empty()

    def option(self, value: Any) -> Any:
        return self.none() if value is None else self.some(value)

    def to_list(self, seq: Any) -> list[Any]:
        return list(self._converters.asJava(seq))

    def to_dict(self, scala_map: Any) -> dict[str, str]:
        """A ``Map[String, String]`` as a dict, in one round trip (as JSON text): iterating
        the map through py4j would cost two round trips per entry."""
        mapper = self.jvm.com.fasterxml.jackson.databind.ObjectMapper()
        return json.loads(mapper.writeValueAsString(self._converters.asJava(scala_map)))

    def unwrap(self, option: Any) -> Any:
        return option.get() if option.isDefined() else None

    def delta(self, name: str) -> Any:
        """A class of ``org.apache.spark.sql.delta``, e.g. ``commands.WriteIntoDelta``."""
        target = self.jvm.org.apache.spark.sql.delta
        for part in name.split("."):
            target = getattr(target, part)
        return target
