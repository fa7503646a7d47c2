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
    counting: bool = True  # False: the same plan without observations (a pre-pass over it counts nothing)
    pinned: dict[str, int] = field(default_factory=dict)  # Delta source versions already chosen
    sources: dict[str, "DataFrame"] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)  # sources whose unparsable records are gathered
    views: list[str] = field(default_factory=list)
    step: int = -1
    gathered: dict[str, int] = field(default_factory=dict)  # rows each `collected` call received
    _observations: dict[str, Any] = field(default_factory=dict)
    _fields: dict[str, list[str]] = field(default_factory=dict)  # the fields each observation fills
    # key -> (observed key, field subtracted from its rows): points that see the same rows
    _aliases: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _last: tuple[Any, str, str | None] | None = None  # the frame last counted, its key, subtracted field

    def observe(self, frame: "DataFrame", key: str, **extra: "Column") -> "DataFrame":
        """Count the rows passing this point of the plan (plus ``extra`` aggregates).

        A point that receives exactly the frame counted last (e.g. one step's output
        flowing into the next step) reuses that count instead of adding an observation:
        each one costs a pass-through operator that also splits Spark's generated code.
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        if not self.counting:
            return frame
        if not extra and self._last is not None and self._last[0] is frame:
            self._aliases[key] = (self._last[1], self._last[2])
            return frame
        observation = Observation(f"{self.prefix}_{key}".replace(".", "_"))
        self._observations[key] = observation
        self._fields[key] = ["rows", *extra]
        columns = [F.count(F.lit(1)).alias("rows"), *(col.alias(name) for name, col in extra.items())]
        observed = frame.observe(observation, *columns)
        self._last = (observed, key, None)
        return observed

    def counted_as(self, frame: "DataFrame", key: str, minus: str | None = None) -> None:
        """``frame`` holds the rows counted at ``key`` (less those counted in ``minus``)."""
        self._last = (frame, key, minus)

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

        self.settle()
        java = self._observations[key]._jo
        if java is None or not java.future().isCompleted():
            return None
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        gathered = java.get().apply(name)
        self.gathered[f"{key}.{name}"] = int(gathered.length())
        rows = jvm.scala.jdk.javaapi.CollectionConverters.asJava(gathered)
        kind = jvm.org.apache.spark.sql.types.DataType.fromJson(schema.json())
        return DataFrame(self.spark._jsparkSession.createDataFrame(rows, kind), self.spark)  # type: ignore[attr-defined]

    def settle(self) -> None:
        """Wait until Spark's listener bus has delivered every event so far: observations
        are completed by a listener, asynchronously, after the action that filled them."""
        self.spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()  # type: ignore[attr-defined]

    def counts(self) -> dict[str, dict[str, int] | None]:
        """Observed values by key; None where that part of the plan never ran
        (e.g. the other side of a join whose first side was empty)."""
        self.settle()
        out: dict[str, dict[str, int] | None] = {}
        for key, observation in self._observations.items():
            java = observation._jo  # pyspark exposes no non-blocking read
            if java is not None and java.future().isCompleted():
                # only the counts cross to Python: a gathered field (``_...``) may hold many
                # rows, and converting them all (``Observation.get``) took seconds
                values = java.get()
                out[key] = {name: int(values.apply(name) or 0) for name in self._fields[key] if not name.startswith("_")}
            else:
                out[key] = None
        for key, (base, minus) in self._aliases.items():
            seen = out.get(base)
            out[key] = None if seen is None else {"rows": seen["rows"] - (seen.get(minus, 0) if minus else 0)}
        return out
