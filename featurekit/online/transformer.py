"""The KServe transformer's work, without KServe: which features a model version was linked to,
and how a request (V1 or V2) is enriched with them.

- :func:`linked_features`: the feature service ``featurekit lineage link`` named in the model
  version's customProperties (``feature_service``, with ``feast_project``). A version linked
  before the link recorded it is read from its DataSet artifacts: a training set names its
  feature service; feature sets name their view and its features, read back as the one catalog
  service over exactly those views when there is one (its own choice and order of features),
  else as every feature of each linked view.
- :class:`Enricher` turns ``{"instances": [{join keys..., other fields...}, ...]}`` into the same
  instances with the online features added under their names (V1), or, in the Open Inference
  Protocol (V2), takes one input tensor per join key (named by the key, shape ``[n]``) and gives
  one tensor per feature to append (named by the feature, shape ``[n]``, its datatype from the
  feature's value type: :data:`V2_DATATYPES`). One store read per view for the whole request. An
  entity the store does not hold gets nulls (as Feast does); a field or input the request
  already carries is kept as given. A bad request is :class:`BadRequest`, which the KServe face
  answers with a 400 and the reason.

``featurekit.online.kserve_model`` puts this behind ``kserve.Model``; KServe is imported there only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from featurekit.config import Project, Settings
from featurekit.errors import NotFound, UsageError
from featurekit.lineage.client import DATASET, RegistryClient, existing_version, registry_client, untagged
from featurekit.lineage.registry_lineage import FEATURE_SET, KIND, TRAINING_SET
from featurekit.online.client import OnlineFeatures, UnknownFeature


# Feast value type -> the Open Inference Protocol datatype of a feature's tensor. The others
# (lists, bytes, timestamps) have no one-value-per-entity JSON form: a V2 transformer refuses them.
V2_DATATYPES = {"INT32": "INT32", "INT64": "INT64", "FLOAT": "FP32", "DOUBLE": "FP64", "BOOL": "BOOL",
                "STRING": "BYTES"}
_V2_INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
V2_KNOWN = ("BOOL", *_V2_INTEGERS, "FP16", "FP32", "FP64", "BYTES")
# Feast value type of a join key -> the tensor datatypes that can carry it
_KEY_DATATYPES = {"INT64": _V2_INTEGERS, "INT32": _V2_INTEGERS, "STRING": ("BYTES",)}


class BadRequest(ValueError):
    """A request the transformer cannot enrich; the message is the reason given to the caller."""


@dataclass(frozen=True)
class Tensor:
    """One input tensor of a V2 request, as JSON carries it (``data`` None: sent as binary)."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None


@dataclass(frozen=True)
class LinkedFeatures:
    """What to look up for a model version: a feature service, or ``view:feature`` references."""

    service: str | None
    features: list[str] | None
    origin: str                         # for the log: where the choice came from

    def describe(self) -> str:
        what = f"feature service {self.service}" if self.service else f"{len(self.features or [])} feature(s)"
        return f"{what} ({self.origin})"


def linked_features(client: RegistryClient, feast_project: str, model: str, version: str,
                    services: dict[str, list[tuple[str, list[str]]]]) -> LinkedFeatures:
    """The features linked to version ``version`` of ``model`` (see the module doc); ``services``
    is the online catalog's (service -> [(view, features)])."""
    _, found = existing_version(client, model, version)
    training_services: list[str] = []
    views: dict[str, list[str]] = {}
    for artifact in client.version_artifacts(found["id"], DATASET):
        props = untagged(artifact.get("customProperties"))
        if props.get("feast_project") not in (None, feast_project):
            continue
        if props.get(KIND) == TRAINING_SET and props.get("feature_service"):
            training_services.append(str(props["feature_service"]))
        elif props.get(KIND) == FEATURE_SET and props.get("feast_view"):
            views[str(props["feast_view"])] = _names(props.get("features"))
    where = f"model {model} version {version}"
    recorded = untagged(found.get("customProperties"))
    if recorded.get("feature_service") and recorded.get("feast_project") in (None, feast_project):
        return LinkedFeatures(str(recorded["feature_service"]), None, f"feature_service of {where}")
    if training_services:
        # the training set recorded last (the registry lists a version's artifacts by id)
        return LinkedFeatures(training_services[-1], None, f"training set of {where}")
    if not views:
        raise NotFound("feature link", f"{model}/{version}", f"{where} has no linked training set or feature sets "
                       "(link them with `featurekit lineage link --service`)", param="version")
    matching = [name for name, parts in services.items() if {view for view, _ in parts} == set(views)]
    if len(matching) == 1:
        return LinkedFeatures(matching[0], None, f"feature sets of {where}")
    refs = [f"{view}:{feature}" for view, features in views.items() for feature in features]
    return LinkedFeatures(None, refs, f"feature sets of {where}")


def _key_values(tensor: Tensor, key_type: str) -> list[Any]:
    """The values of a join key's input tensor, checked: shape [n], n values of the key's type."""
    name, allowed = tensor.name, _KEY_DATATYPES[key_type]
    if tensor.datatype not in allowed:
        raise BadRequest(f"input {name}: datatype {tensor.datatype} cannot carry the join key {name} ({key_type}); "
                         f"expected {' or '.join(allowed) if len(allowed) < 3 else 'an integer datatype'}")
    if len(tensor.shape) != 1:
        raise BadRequest(f"input {name}: expected shape [n], one value per entity; got {tensor.shape}")
    if tensor.data is None:
        raise BadRequest(f"input {name}: no JSON data (binary tensor data is not taken for join keys)")
    if len(tensor.data) != tensor.shape[0]:
        raise BadRequest(f"input {name}: shape {tensor.shape} but {len(tensor.data)} value(s)")
    wanted = str if key_type == "STRING" else int
    for i, value in enumerate(tensor.data):
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise BadRequest(f"input {name}, value {i}: expected {'a string' if wanted is str else 'an integer'}; "
                             f"got {json.dumps(value)}")
    return list(tensor.data)


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(value) if isinstance(value, str) else []
    except ValueError:
        parsed = []
    return [str(v) for v in parsed] if isinstance(parsed, list) else []


class Enricher:
    """Adds the linked online features to V1 instances (see the module doc).

    The online client is made on first use in each process: with ``--workers N`` KServe pickles
    the model into each worker, and a store connection must not travel (it is left out of the
    pickle; ``make_client`` must pickle).
    """

    def __init__(self, make_client: Callable[[], OnlineFeatures], linked: LinkedFeatures,
                 client: OnlineFeatures | None = None) -> None:
        self._make_client = make_client
        self.linked = linked
        self._client, self._pid = client, (os.getpid() if client is not None else 0)
        self._types: tuple[dict[str, str], dict[str, str]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_pid": 0}

    @property
    def client(self) -> OnlineFeatures:
        if self._client is None or self._pid != os.getpid():
            self._client, self._pid = self._make_client(), os.getpid()
        return self._client

    def check(self, protocol: str = "v1") -> tuple[list[str], list[str]]:
        """(join keys, feature names) of the linked features; raises if the catalog lacks them or,
        for ``protocol`` v2, if a feature or join key has no V2 datatype."""
        plan = self.client.plan(self.linked.features, self.linked.service)
        if protocol == "v2":
            self._v2_types()
        return plan.join_keys, [name for _, names in plan.views for name in names]

    def _v2_types(self) -> tuple[dict[str, str], dict[str, str]]:
        """(join key -> Feast type, feature -> V2 datatype) of the linked features."""
        if self._types is not None:
            return self._types
        client = self.client
        plan = client.plan(self.linked.features, self.linked.service)
        keys = client.join_key_types(plan)
        features = {name: client.layouts[view].features[name] for view, names in plan.views for name in names}
        bad = [f"join key {k} ({t})" for k, t in keys.items() if t not in _KEY_DATATYPES]
        bad += [f"feature {f} ({t})" for f, t in features.items() if t not in V2_DATATYPES]
        if bad:
            raise UsageError("protocol", f"{', '.join(bad)}: no V2 tensor datatype for this value type (V2 carries "
                             f"{', '.join(sorted(set(V2_DATATYPES) | set(_KEY_DATATYPES)))}); serve this model "
                             "with the v1 protocol")
        self._types = keys, {f: V2_DATATYPES[t] for f, t in features.items()}
        return self._types

    def enrich_v1(self, payload: Any) -> dict[str, Any]:
        """``payload`` with each instance given its features (a new dict; ``payload`` is not changed)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise BadRequest('expected a JSON object with "instances": a list of objects')
        instances = payload["instances"]
        client = self.client
        plan = client.plan(self.linked.features, self.linked.service)
        entities: dict[str, list[Any]] = {key: [] for key in plan.join_keys}
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise BadRequest(f"instances[{i}]: expected an object with the join key(s) "
                                 f"{', '.join(plan.join_keys)}; got {type(instance).__name__}")
            missing = [key for key in plan.join_keys if instance.get(key) is None]
            if missing:
                raise BadRequest(f"instances[{i}]: missing join key(s) {', '.join(missing)}")
            for key in plan.join_keys:
                value = instance[key]
                if isinstance(value, (dict, list, float)):
                    raise BadRequest(f"instances[{i}].{key}: expected a string or an integer; got {value!r}")
                entities[key].append(value)
        try:
            found = client.get(entities, features=self.linked.features, service=self.linked.service)
        except UnknownFeature as exc:
            raise BadRequest(exc.problems[0].message) from None
        except (TypeError, ValueError) as exc:       # a key value the store cannot take
            raise BadRequest(f"bad entity value: {exc}") from None
        names = [name for name in found if name not in plan.join_keys]
        enriched = []
        for i, instance in enumerate(instances):
            row = dict(instance)
            for name in names:
                row.setdefault(name, found[name][i])
            enriched.append(row)
        return {**payload, "instances": enriched}

    def enrich_v2(self, inputs: list[Tensor]) -> list[Tensor]:
        """The tensors to append to a V2 request of ``inputs``: one per linked feature the request
        does not carry already, in the order of the linked features."""
        key_types, datatypes = self._v2_types()
        given = {tensor.name: tensor for tensor in inputs}
        for tensor in inputs:
            if tensor.datatype not in V2_KNOWN:
                raise BadRequest(f"input {tensor.name}: unknown datatype {tensor.datatype!r} (expected one of "
                                 f"{', '.join(V2_KNOWN)})")
        missing = [key for key in key_types if key not in given]
        if missing:
            raise BadRequest(f"missing input tensor(s) {', '.join(missing)}: one input per join key, named by the "
                             "key, shape [n]")
        entities = {key: _key_values(given[key], key_types[key]) for key in key_types}
        counts = {key: len(values) for key, values in entities.items()}
        if len(set(counts.values())) > 1:
            raise BadRequest("the join key inputs differ in length: "
                             + ", ".join(f"{key} [{n}]" for key, n in counts.items()))
        n = next(iter(counts.values()))
        try:
            found = self.client.get(entities, features=self.linked.features, service=self.linked.service)
        except UnknownFeature as exc:
            raise BadRequest(exc.problems[0].message) from None
        return [Tensor(name, datatype, [n], found[name]) for name, datatype in datatypes.items() if name not in given]


def enricher_for(project: Project, settings: Settings, model: str, version: str, protocol: str = "v1") -> Enricher:
    """The enricher of ``model`` version ``version`` in ``settings``' registry and online store,
    checked against the online catalog (and the V2 datatypes, for ``protocol`` v2) before any
    request comes."""
    catalog = OnlineFeatures(settings.env, project, settings)
    with registry_client(settings) as client:
        linked = linked_features(client, settings.feast.project, model, version, catalog.services)
    enricher = Enricher(partial(OnlineFeatures, settings.env, project, settings), linked, catalog)
    enricher.check(protocol)
    return enricher
