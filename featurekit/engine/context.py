"""What the step ops share while a job's plan is built: the session, the sources, and
row counts taken with Spark observations (no extra pass: they are filled by the one
action that computes the result).

Each observation is an operator in the plan: it passes every row through, and it splits
Spark's generated code around it, so the context places as few as the counts allow. A
count point is left *open* until the next op needs the frame for something else: an op
that counts the same rows (the next step's input) adds its values to the same node, and a
``filter`` adds one conditional count per filter instead of a node of its own. A chain of
filters after a source is then counted by the source's own node. A projection (a step
that keeps every row) moves an open count of its input's rows above itself instead: below
it, the observation would split the code Spark generates between the scan and the
projection, and above it the row the projection builds anyway passes through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from pyspark.sql import Column, DataFrame, SparkSession

    from featurekit.spec.intervals import Arrivals, Interval
    from pyspark.sql.types import StructType


@dataclass
class _Point:
    """Where one count point's values live: an observation (``node``) and, per value
    name, the node's field that holds it."""

    node: str
    fields: dict[str, str]


@dataclass
class _Open:
    """An observation not yet in the plan. ``current`` is what the ops see: ``frame``
    with ``after`` applied (absorbed filters; ``then`` steps that keep every row) but no
    observation; placing it inserts the observation between ``frame`` and ``after``."""

    node: str
    frame: "DataFrame"
    columns: dict[str, "Column"]
    current: "DataFrame"
    rows_field: str = "rows"  # the field counting the rows of ``current``
    keep: "Column | None" = None  # what a row must satisfy to reach ``current``
    after: list[Callable[["DataFrame"], "DataFrame"]] = field(default_factory=list)
    # (steps replayed, callback): tell a caller the frame at that point once placed
    placed: list[tuple[int, Callable[["DataFrame"], None]]] = field(default_factory=list)


@dataclass
class BuildContext:
    """State of one job's plan while its steps are applied."""

    spark: "SparkSession"
    prefix: str
    counting: bool = True  # False: the same plan without observations (a pre-pass over it counts nothing)
    pinned: dict[str, int] = field(default_factory=dict)  # Delta source versions already chosen
    interval: "Interval | None" = None  # an incremental run: the event time it recomputes
    run_end: "datetime | None" = None  # where ``aggregate.expire`` stops (default: now)
    arrivals: "Arrivals | None" = None  # a by: arrival run: what it reads of the first source
    sources: dict[str, "DataFrame"] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)  # sources whose unparsable records are gathered
    views: list[str] = field(default_factory=list)
    step: int = -1
    gathered: dict[str, int] = field(default_factory=dict)  # rows each `collected` call received
    _observations: dict[str, Any] = field(default_factory=dict)
    _points: dict[str, _Point] = field(default_factory=dict)
    _open: _Open | None = None
    _carried: dict[str, str | None] = field(default_factory=dict)  # count points left to a later node (see carry)
    _last: tuple["DataFrame", _Point] | None = None  # the frame last placed, where its rows are counted
    # whether a later step may read a source by its name (a view, ``ctx.sources``) rather than
    # through the running frame: then a source's count stays with the source (see ``project``)
    sources_read_later: bool = True

    # ------------------------------------------------------------------ count points

    def observe(self, frame: "DataFrame", key: str, **extra: "Column") -> "DataFrame":
        """Count the rows of ``frame`` (plus ``extra`` aggregates) at point ``key``; the
        frame returned carries the observation (placed in the plan)."""
        if not self.counting:
            return frame
        opened = self._open
        if opened is not None and frame is opened.current:
            if opened.keep is None:  # the same rows as the open node: one node counts both
                self._points[key] = _Point(opened.node, {"rows": opened.rows_field,
                                                         **self._add_fields(opened, key, extra)})
                return self.place(frame)
            if not extra:  # the rows left by absorbed filters: their conditional count
                self._points[key] = _Point(opened.node, {"rows": opened.rows_field})
                return self.place(frame)
        frame = self.place(frame)
        if not extra and self._last is not None and self._last[0] is frame:  # the rows counted last
            self._points[key] = self._last[1]
            return frame
        self._open = self._opened(frame, key, extra)
        return self.place(self._open.current)

    def count_later(self, frame: "DataFrame", key: str, **extra: "Column") -> "DataFrame":
        """Count the rows of ``frame`` at point ``key``, leaving the observation open for
        what comes next; the frame returned must reach ``observe``, ``filter`` or ``place``."""
        if not self.counting:
            return frame
        frame = self.place(frame)
        self._open = self._opened(frame, key, extra)
        return frame

    def carry(self, frame: "DataFrame", key: str) -> "DataFrame":
        """Leave count point ``key`` (the rows of ``frame``) to a later observation, which
        :meth:`fill` names: for an op whose output carries its input's count (an aggregate's
        per-group row counts). An open count of exactly these rows is dropped: its points
        are filled the same way, and its node is not placed."""
        if not self.counting:
            return frame
        opened = self._open
        dropped = None
        if opened is not None and frame is opened.current and opened.keep is None and list(opened.columns) == ["rows"]:
            self._open, dropped = None, opened.node
        else:
            frame = self.place(frame)
        self._carried[key] = dropped
        return frame

    def fill(self, key: str, frame: "DataFrame", **values: "Column") -> None:
        """Count point ``key``, left by :meth:`carry`, gets ``values`` (``rows`` among them),
        aggregates added to the open observation ``frame`` comes from."""
        if not self.counting:
            return
        opened = self._open
        if opened is None or frame is not opened.current or opened.keep is not None:
            raise ValueError(f"count point {key!r} can only be filled in an open observation of a later frame")
        fields = self._add_fields(opened, key, values)
        self._points[key] = _Point(opened.node, fields)
        dropped = self._carried.pop(key)
        for name, point in list(self._points.items()):
            if point.node == dropped:
                self._points[name] = _Point(opened.node, {"rows": fields["rows"]})

    def filter(self, frame: "DataFrame", condition: "Column", in_key: str | None, out_key: str | None,
               then: Callable[["DataFrame"], "DataFrame"] | None = None) -> "DataFrame":
        """``frame.filter(condition)`` (then ``then``, which must keep every row), counting
        the rows in and out: inside the open observation where ``frame`` comes from one,
        else in one opened at ``frame``. A null condition drops the row, as SQL's WHERE."""
        from pyspark.sql import functions as F

        def step(f: "DataFrame") -> "DataFrame":
            kept = f.filter(condition)
            return then(kept) if then is not None else kept

        if not self.counting:
            return step(frame)
        opened = self._open
        if opened is None or frame is not opened.current:
            if in_key is None:
                raise ValueError("a filter outside an open count needs a count point for its input")
            frame = self.place(frame)
            opened = self._open = self._opened(frame, in_key, {})
        elif in_key is not None:
            self._points[in_key] = _Point(opened.node, {"rows": opened.rows_field})
        current = step(opened.current)  # analysed now: a bad condition fails here, at its step
        if not _deterministic(current, then is not None):
            # counted apart from the filter, rand() would draw other values: count after it
            placed = step(self.place(opened.current))
            return self.observe(placed, out_key) if out_key else placed
        opened.keep = condition if opened.keep is None else opened.keep & condition
        opened.rows_field = f"rows_{len(opened.after) + 1}"
        # count(CASE ...), not count_if: Spark rewrites count_if(c) as count(if(NOT c, null, c)),
        # which names c twice and has the optimizer compute it in a projection of every column
        # below the observation (a copy of each row, as wide as the source)
        opened.columns[opened.rows_field] = F.count(F.when(opened.keep, F.lit(1)))
        opened.after.append(step)
        opened.current = current
        if out_key is not None:
            self._points[out_key] = _Point(opened.node, {"rows": opened.rows_field})
        return current

    def project(self, frame: "DataFrame", build: Callable[["DataFrame"], "DataFrame"],
                counted_as: tuple[str, str] | None = None, keeps_rows: bool = False) -> "DataFrame":
        """``build(frame)``, for a step meant to keep every row (a projection).

        An open count of exactly ``frame``'s rows (no filter absorbed, nothing gathered)
        moves above the result instead of being placed below it. Measured on 5M Parquet
        rows: a count between a columnar scan and a projection costs 0.6 s of executor CPU,
        one above it 0.2 s. A source's count only moves when no later step reads that
        source by name (``sources_read_later``): its view and ``sources`` entry are then the
        source as read, and its rows are counted on the running frame's way to the output.

        Unless ``keeps_rows`` vouches for it, the result's plan is checked: a ``select`` may
        hold a generator or an aggregate. Such a result is counted like a filter's, in and
        out at the count points ``counted_as``."""
        opened = self._open
        movable = (self.counting and opened is not None and frame is opened.current and opened.keep is None
                   and not opened.after and list(opened.columns) == ["rows"]
                   and not (opened.placed and self.sources_read_later))
        if movable and opened is not None:  # the source as read, for the step too (a subquery may name it)
            for _, callback in opened.placed:
                callback(frame)
            opened.placed.clear()
        base = frame if movable else self.place(frame)
        result = build(base)
        if keeps_rows or _projection_of(result, base):
            if movable and opened is not None:
                opened.frame = opened.current = result
            return result
        if counted_as is None:
            return build(self.place(frame)) if movable else result
        counted = self.observe(frame if movable else base, counted_as[0])  # where its rows are already counted, if they are
        return self.count_later(build(counted), counted_as[1])

    def when_placed(self, frame: "DataFrame", callback: Callable[["DataFrame"], None]) -> None:
        """Call ``callback`` with ``frame`` as it will be in the plan: now, or when the open
        observation ``frame`` comes from is placed."""
        opened = self._open
        if opened is not None and frame is opened.current:
            opened.placed.append((len(opened.after), callback))
        else:
            callback(frame)

    def place(self, frame: "DataFrame") -> "DataFrame":
        """``frame`` with the open observation in the plan (if ``frame`` comes from it)."""
        from pyspark.sql import Observation

        opened = self._open
        if opened is None or frame is not opened.current:
            return frame
        self._open = None
        observation = Observation(f"{self.prefix}_{opened.node}".replace(".", "_"))
        self._observations[opened.node] = observation
        placed = opened.frame.observe(observation, *(c.alias(n) for n, c in opened.columns.items()))
        for index in range(len(opened.after) + 1):
            for _, callback in (c for c in opened.placed if c[0] == index):
                callback(placed)
            if index < len(opened.after):
                placed = opened.after[index](placed)
        self._last = (placed, _Point(opened.node, {"rows": opened.rows_field}))
        return placed

    def _opened(self, frame: "DataFrame", key: str, extra: dict[str, "Column"]) -> _Open:
        from pyspark.sql import functions as F

        if self._open is not None:  # its frame went elsewhere: its counts would never be filled
            raise RuntimeError(f"count point {self._open.node!r} was left open and never placed in the plan")
        opened = _Open(node=key, frame=frame, columns={"rows": F.count(F.lit(1))}, current=frame)
        self._points[key] = _Point(key, {"rows": "rows", **self._add_fields(opened, key, extra)})
        return opened

    @staticmethod
    def _add_fields(opened: _Open, key: str, extra: dict[str, "Column"]) -> dict[str, str]:
        """Add ``extra`` to the open node's aggregates; each value's field name. Gathered
        fields (``_...``) keep their name, read back by ``collected``."""
        names = {}
        for name, column in extra.items():
            field_name = name if name.startswith("_") or name not in opened.columns else f"{key}_{name}".replace(".", "_")
            opened.columns[field_name] = column
            names[name] = field_name
        return names

    def step_key(self, what: str) -> str:
        return f"step{self.step}.{what}"

    # ------------------------------------------------------------------ views

    def register_view(self, name: str, frame: "DataFrame") -> None:
        frame.createOrReplaceTempView(name)
        if name not in self.views:
            self.views.append(name)

    def drop_views(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.views.clear()

    # ------------------------------------------------------------------ reading the counts

    def collected(self, key: str, name: str, schema: "StructType") -> "DataFrame | None":
        """The rows that count point ``key`` gathered in its ``name`` field (a
        ``collect_list`` of structs of ``schema``), as a DataFrame over the driver's copy;
        None if that part of the plan never ran."""
        from pyspark.sql import DataFrame

        self.settle()
        point = self._points[key]
        java = self._observations[point.node]._jo
        if java is None or not java.future().isCompleted():
            return None
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        gathered = java.get().apply(point.fields[name])
        self.gathered[f"{key}.{name}"] = int(gathered.length())
        rows = jvm.scala.jdk.javaapi.CollectionConverters.asJava(gathered)
        kind = jvm.org.apache.spark.sql.types.DataType.fromJson(schema.json())
        return DataFrame(self.spark._jsparkSession.createDataFrame(rows, kind), self.spark)  # type: ignore[attr-defined]

    def settle(self) -> None:
        """Wait until Spark's listener bus has delivered every event so far: observations
        are completed by a listener, asynchronously, after the action that filled them."""
        self.spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()  # type: ignore[attr-defined]

    def counts(self) -> dict[str, dict[str, int] | None]:
        """Observed values by count point; None where that part of the plan never ran
        (e.g. the other side of a join whose first side was empty)."""
        self.settle()
        values: dict[str, Any] = {}
        for node, observation in self._observations.items():
            java = observation._jo  # pyspark exposes no non-blocking read
            values[node] = java.get() if java is not None and java.future().isCompleted() else None
        out: dict[str, dict[str, int] | None] = {}
        for key, point in self._points.items():
            seen = values.get(point.node)
            # only the counts cross to Python: a gathered field (``_...``) may hold many
            # rows, and converting them all (``Observation.get``) took seconds
            out[key] = None if seen is None else {
                name: int(seen.apply(f) or 0) for name, f in point.fields.items() if not name.startswith("_")}
        return out


def _deterministic(filtered: "DataFrame", then: bool) -> bool:
    """Whether the condition of the filter at the top of ``filtered`` (under ``then``'s
    projection) is deterministic: only then can a count elsewhere in the plan stand for it."""
    node = filtered._jdf.queryExecution().analyzed()
    if then:
        node = node.child()
    return bool(node.condition().deterministic())


def _projection_of(projected: "DataFrame", frame: "DataFrame") -> bool:
    """Whether ``projected``'s plan is ``frame``'s under projections and windows only: the
    same rows, one for one (no generator, aggregate, filter or join)."""
    node = projected._jdf.queryExecution().analyzed()
    base = frame._jdf.queryExecution().analyzed()
    while node.nodeName() in ("Project", "Window"):
        node = node.child()
        if node.equals(base):
            return True
    return False
