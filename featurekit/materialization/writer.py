"""Materialization's writer: the online-store port's own where it has one, else Feast's generic one.

:class:`OnlineWriter` is shipped to Spark's Python workers (it holds only picklable data: the
store settings, the feature view as a proto and featurekit's writer layout) and writes Arrow
batches through the online-store port's own writer where it has one (the workers then never
import Feast), else through Feast's ``online_write_batch``, so the key layout and value encoding
are Feast's either way. Memory is bounded by one Arrow batch per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from featurekit.online_store import open_online_store


class OnlineWriter:
    """Writes Arrow batches of latest rows (join keys, timestamp, features) into the online store."""

    def __init__(self, store_config: dict[str, Any], repo_path: str, view_proto: bytes,
                 layout: Any = None, replace_until: int | None = None) -> None:
        self.store_config = store_config
        self.repo_path = repo_path
        self.view_proto = view_proto
        self.layout = layout                 # the port's writer layout, None: Feast's writer
        self.replace_until = replace_until   # see the port's batch_writer; None: keep the newer value, as Feast

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        """``mapInArrow`` function: one output row per task (rows written, batches)."""
        import pyarrow as pa

        write = self._featurekit() or self._feast()
        written = count = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            write(batch)
            written += batch.num_rows
            count += 1
        yield pa.RecordBatch.from_pydict({"written": [written], "batches": [count]})

    def _featurekit(self) -> Any:
        """The port's columnar writer for this store, or None (then Feast's)."""
        if self.layout is None:
            return None
        return open_online_store(self.store_config, self.repo_path).batch_writer(self.layout, self.replace_until)

    def _feast(self) -> Any:
        from feast.feature_view import FeatureView
        from feast.infra.provider import get_provider
        from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto
        from feast.repo_config import RepoConfig
        from feast.utils import _convert_arrow_to_proto

        from featurekit.config.environment import with_environment

        # filled here, in the worker, from its environment: the settings shipped hold references
        config = RepoConfig(repo_path=Path(self.repo_path), **with_environment(self.store_config))
        view_proto = FeatureViewProto()
        view_proto.ParseFromString(self.view_proto)
        view = FeatureView.from_proto(view_proto)
        join_keys = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
        provider = get_provider(config)

        def write(batch: Any) -> None:
            provider.online_write_batch(config, view, _convert_arrow_to_proto(batch, view, join_keys), progress=None)

        return write
