"""``unique`` in the gate: how each uniqueness rule is checked, in the one pass or after it.

A uniqueness rule is checked in one of two ways. Where the result's plan is cheap to read again
(no shuffle, deterministic, columnar or in-memory sources), a pre-pass reads only the key
columns and finds the key hashes that occur more than once; the rows carrying one are held
back from the write, gathered with the bad rows, and ranked exactly among themselves after
the pass; the first of each key is then written into the same open transaction. Otherwise
(or when many rows share repeated keys) a ``row_number`` window over the keys ranks every
row in the pass; where the plan already shuffles on those keys that window is nearly free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from featurekit.spec.sqlcheck import quote
from featurekit.spec.validate import ColumnRule, ValidateSpec
from featurekit.validation.rules import RowRule

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

HELD = "__fk_held"  # marks the rows a uniqueness rule holds back until after the pass

# Held-back uniqueness: above this many rows sharing repeated keys, the window ranks instead
# (held rows travel to the driver with the bad rows).
HELD_ROWS_MAX = 200_000
# The pre-pass sorts the key hashes on the driver (8 bytes a row) when Spark estimates the
# plan's input at most this size; above it, Spark aggregates them.
DRIVER_HASHES_MAX_BYTES = 512 * 1024 * 1024
# Plan nodes that shuffle, sort or limit: a plan holding one is not read twice.
_WIDE = {"Aggregate", "Window", "WindowGroupLimit", "Join", "Sort", "Repartition", "RepartitionByExpression",
         "RebalancePartitions", "Deduplicate", "Distinct", "Expand", "GlobalLimit", "LocalLimit", "Tail",
         "Intersect", "Except", "Offset", "Sample"}
_IN_MEMORY = {"LocalRelation", "Range", "OneRowRelation"}
_COLUMNAR = {"ParquetFileFormat", "DeltaParquetFileFormat", "OrcFileFormat"}


@dataclass
class HeldBack:
    """A uniqueness rule checked through its repeated keys (see the module's docstring)."""

    rule: int  # index of the rule in the gate's rules
    column: str  # the boolean column marking the rows held back
    keys: list[str]
    ordering: list["Column"]


@dataclass
class UniqueChecks:
    """The uniqueness rules of a result, ready for the gate's flags.

    ``frame`` carries a marker column per held-back rule and a rank column per windowed one
    (``helpers``, dropped once the flags are computed); each rule's failure SQL is FALSE for a
    held-back rule (its flag is set after the pass, by ranking the held rows) or the rank > 1."""

    frame: "DataFrame"
    rules: list[RowRule] = field(default_factory=list)
    held: list[HeldBack] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    methods: list[dict[str, Any]] = field(default_factory=list)  # how each was checked, for the report


def unique_checks(frame: "DataFrame", spec: ValidateSpec, columns: dict[str, ColumnRule], model_unique: list[str] | None,
                  rescan: Callable[[], "DataFrame"] | None, first_rule: int) -> UniqueChecks:
    """The uniqueness rules of ``spec``, ``columns`` and a model's ``model_unique`` on ``frame``,
    numbered from ``first_rule`` among the gate's rules. ``rescan`` builds the same plan without
    observations (for the pre-pass); without it every rule ranks with a window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    out = UniqueChecks(frame)
    uniques = _unique_rules(spec, columns, frame.columns, model_unique)
    why_not, observed = _not_rescannable(frame) if uniques and rescan is not None else ("no pre-pass offered", True)
    plain = None
    if uniques and why_not is None and rescan is not None:
        plain = rescan() if observed else frame  # a plan without observations is read as it is
    # one pre-pass reads the keys of every uniqueness rule
    repeats = _repeated_hashes(plain, [keys for _, keys, _, _ in uniques]) if plain is not None else None
    for index, (rule, keys, order, keep) in enumerate(uniques):
        usable = [c for c in order if _orderable(frame, c)]
        if rule_declares_order(spec, keys):
            ordering = [F.col(c).asc_nulls_last() if keep == "first" else F.col(c).desc_nulls_last() for c in usable]
        else:  # no order declared: one cheap deterministic key (a hash of the other columns)
            ordering = [F.xxhash64(*(F.col(c) for c in usable))] if usable else [F.lit(1)]
        method: dict[str, Any] = {"keys": rule.column}
        repeated = repeats[index] if repeats is not None else None
        if repeated is not None and repeated[1] <= HELD_ROWS_MAX:
            hashes, rows = repeated
            marker = f"{HELD}{index}"
            out.frame = out.frame.withColumn(marker, _hash_in(keys, hashes))
            out.held.append(HeldBack(first_rule + len(out.rules), marker, keys, ordering))
            out.rules.append(RowRule(rule.check, rule.column, "FALSE", rule.message))
            method.update(method="repeated keys, held back", repeated_keys=len(hashes), rows_held=rows)
        else:
            helper = f"__fk_unique{index}"
            out.frame = out.frame.withColumn(helper, F.row_number().over(Window.partitionBy(*keys).orderBy(*ordering)))
            out.helpers.append(helper)
            out.rules.append(RowRule(rule.check, rule.column, f"{quote(helper)} > 1", rule.message))
            why = why_not if repeated is None else f"{repeated[1]:,} rows share repeated keys (> {HELD_ROWS_MAX:,})"
            method.update(method="window", why=why)
        out.methods.append(method)
    return out


def _unique_rules(spec: ValidateSpec, columns: dict[str, ColumnRule], frame_columns: list[str],
                  model_unique: list[str] | None = None) -> list[tuple[RowRule, list[str], list[str], str]]:
    """(rule, keys, order columns, keep) for each uniqueness rule; the rule's SQL is filled later.

    Without a declared ``order_by`` the other columns decide, through one hash of them.
    """
    out = []
    if model_unique and (spec.unique is None or [k.lower() for k in spec.unique.keys] != [k.lower() for k in model_unique]):
        keys = list(model_unique)
        label = ",".join(keys)
        order = [c for c in frame_columns if c not in keys]
        out.append((RowRule("unique", label, "", f"({label}) repeats an earlier row"), keys, order, "first"))
    if spec.unique is not None:
        keys = list(spec.unique.keys)
        order = list(spec.unique.order_by) or [c for c in frame_columns if c not in keys]
        label = ",".join(keys)
        message = f"({label}) repeats an earlier row"
        out.append((RowRule("unique", label, "", message), keys, order, spec.unique.keep))
    for name, rule in columns.items():
        if rule.checks.unique:
            order = [c for c in frame_columns if c != name]
            out.append((RowRule("unique", name, "", "repeats an earlier row"), [name], order, "first"))
    return out


def _not_rescannable(frame: "DataFrame") -> tuple[str | None, bool]:
    """Why reading ``frame``'s plan a second time (for its keys) would cost much (None if
    it would not), and whether the plan holds observations (a second read would fill them)."""
    converters = frame.sparkSession._jvm.scala.jdk.javaapi.CollectionConverters  # type: ignore[attr-defined]
    plan = frame._jdf.queryExecution().optimizedPlan()
    if not plan.deterministic():
        return "the plan is not deterministic", True
    stack, observed = [plan], False
    while stack:
        node = stack.pop()
        name = node.nodeName()
        if name in _WIDE:
            return f"the plan has a {name} (a shuffle, sort or limit)", True
        observed = observed or name == "CollectMetrics"
        children = list(converters.asJava(node.children()))
        if not children and name not in _IN_MEMORY:
            kind = _file_format(node)
            if kind not in _COLUMNAR:
                return f"a source is read by {kind or name} (reading it twice costs a full parse)", True
        stack.extend(children)
    return None, observed


def _file_format(node: Any) -> str | None:
    try:
        return str(node.relation().fileFormat().getClass().getSimpleName())
    except Exception:  # not a file relation
        return None


def _repeated_hashes(plain: "DataFrame", key_sets: list[list[str]]) -> list[tuple[list[int], int]]:
    """For each set of keys: the xxhash64 values that occur more than once, and the rows
    carrying them.

    A superset of the repeated keys (a hash collision only holds back one more row). One
    pass reads only the key columns; the hashes are sorted on the driver (pyarrow + numpy)
    unless Spark estimates the input above ``DRIVER_HASHES_MAX_BYTES``.
    """
    from pyspark.sql import functions as F

    hashes = plain.select(*(F.xxhash64(*(F.col(k) for k in keys)).alias(f"h{i}") for i, keys in enumerate(key_sets)))
    if _estimated_bytes(plain) > DRIVER_HASHES_MAX_BYTES:
        out = []
        for i in range(len(key_sets)):
            found = hashes.groupBy(f"h{i}").count().filter(F.col("count") > 1).collect()
            out.append(([int(r[f"h{i}"]) for r in found], sum(int(r["count"]) for r in found)))
        return out
    import numpy as np

    table = hashes.toArrow()
    out = []
    for i in range(len(key_sets)):
        # a batch's hashes (never null) are read in place; ChunkedArray.to_numpy copied them slowly
        chunks = [chunk.to_numpy() for chunk in table.column(f"h{i}").chunks]
        values = np.sort(np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64))
        again = values[1:][values[1:] == values[:-1]]
        repeated = np.unique(again)
        out.append(([int(h) for h in repeated], int(len(again) + len(repeated))))
    return out


def _hash_in(keys: list[str], hashes: list[int]) -> "Column":
    """TRUE for a row whose key hash is one of ``hashes`` (one SQL expression: Spark turns a
    long IN list into a hash-set lookup)."""
    from pyspark.sql import functions as F

    if not hashes:
        return F.lit(False)
    return F.expr(f"xxhash64({', '.join(quote(k) for k in keys)}) IN ({', '.join(map(str, hashes))})")


def _estimated_bytes(frame: "DataFrame") -> int:
    try:
        size = frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
    except Exception:  # no estimate: assume the input is large
        return DRIVER_HASHES_MAX_BYTES + 1
    return int(size if isinstance(size, int) else size.toString())  # py4j converts a BigInt it can


def rule_declares_order(spec: ValidateSpec, keys: list[str]) -> bool:
    return spec.unique is not None and spec.unique.keys == keys and bool(spec.unique.order_by)


def _orderable(frame: "DataFrame", column: str) -> bool:
    from pyspark.sql.types import ArrayType, MapType, StructType

    kind = next((f.dataType for f in frame.schema.fields if f.name == column), None)
    return kind is not None and not isinstance(kind, (MapType, ArrayType, StructType))
