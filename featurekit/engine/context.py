"""What the step ops share while a job's plan is built: the session, the sources, and
row counts taken with Spark observations (no extra pass: they are filled by the one
action that computes the result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType


@dataclass
class BuildContext:
    """State of one job's plan while its steps are applied."""

    spark: "SparkSession"
    prefix: str
    sources: dict[str, "DataFrame"] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)  # sources whose unparsable records are gathered
    views: list[str] = field(default_factory=list)
    step: int = -1
    _observations: dict[str, Any] = field(default_factory=dict)

    def observe(self, frame: "DataFrame", key: str, **extra: "Column") -> "DataFrame":
        """Count the rows passing this point of the plan (plus ``extra`` aggregates)."""
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        observation = Observation(f"{self.prefix}_{key}".replace(".", "_"))
        self._observations[key] = observation
        columns = [F.count(F.lit(1)).alias("rows"), *(col.alias(name) for name, col in extra.items())]
        return frame.observe(observation, *columns)

    def step_key(self, what: str) -> str:
        return f"step{self.step}.{what}"

    def register_view(self, name: str, frame: "DataFrame") -> None:
        frame.createOrReplaceTempView(name)
        if name not in self.views:
            self.views.append(name)

    def drop_views(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.views.clear()

    def collected(self, key: str, name: str, schema: "StructType") -> "DataFrame | None":
        """The rows that observation ``key`` gathered in its ``name`` field (a
        ``collect_list`` of structs of ``schema``), as a DataFrame over the driver's copy;
        None if that part of the plan never ran."""
        from pyspark.sql import DataFrame

        java = self._observations[key]._jo
        if java is None or not java.future().isCompleted():
            return None
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        rows = jvm.scala.jdk.javaapi.CollectionConverters.asJava(java.get().apply(name))
        kind = jvm.org.apache.spark.sql.types.DataType.fromJson(schema.json())
        return DataFrame(self.spark._jsparkSession.createDataFrame(rows, kind), self.spark)  # type: ignore[attr-defined]

    def counts(self) -> dict[str, dict[str, int] | None]:
        """Observed values by key; None where that part of the plan never ran
        (e.g. the other side of a join whose first side was empty)."""
        out: dict[str, dict[str, int] | None] = {}
        for key, observation in self._observations.items():
            java = observation._jo  # pyspark exposes no non-blocking read
            if java is not None and java.future().isCompleted():
                out[key] = {k: int(v or 0) for k, v in observation.get.items() if not k.startswith("_")}
            else:
                out[key] = None
        return out
