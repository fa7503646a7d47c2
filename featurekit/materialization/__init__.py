"""Materialization's engines: a Delta table version's window (or its changes) -> the online store.

- ``spark``: the window reduced in Spark to the latest row per entity key, counting rows and
  keys on the way; Spark's Python workers write those rows in Arrow batches through the
  online-store port's writer or Feast's own online store classes (Feast's key layout and
  encoding either way; memory bounded by one batch per task).
- ``arrow``: no JVM; delta-rs streams the window's rows, unsorted, to featurekit's Redis writer
  in this process, which keeps the newer value per key (a plain Redis only: SQLite's upsert
  would let an older row win).

``--incremental`` (:mod:`~featurekit.materialization.incremental`) continues from the store's
:class:`~featurekit.online_store.Marker`: the keys changed since its Delta version, among rows
within ``[end - ttl, end]`` (from the table's Change Data Feed, else a diff of both versions'
windows); per changed key its newest row still held among the changes, or, where that may be
an untouched row, the key's rows looked up in the table (those keys only); the rows newer than
the marker's end; the latest row per key replaces the store's value, and those keys are read
back (:mod:`~featurekit.materialization.readback`). A key whose rows all left the window keeps
its stored value, as with a whole window.

This package decides nothing about Feast's registry, markers or lineage: the pipeline records
those once a view is verified.
"""
