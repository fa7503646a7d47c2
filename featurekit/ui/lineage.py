"""What the catalog shows of the Model Registry: the registered models and their versions, the
model versions a feature view's data went into, and a version's lineage tree.

A page must not wait on a registry that does not answer: the catalog asks with a short timeout
and no retries, and once the registry is found unreachable it says so at once for a few seconds
instead of waiting out the timeout again on every page. Whatever fails (a closed port, a timeout,
a server that is not a Model Registry, a token that is not set) is :class:`RegistryUnreachable`,
which names the registry's URL (masked) and the reason; each page says so in its lineage parts
and shows the rest.

Which views a version reaches needs the artifacts of every version (the registry cannot be asked
"which versions link this artifact"): they are kept per version until the version changes (its
last update time), so a feature page asks the registry two lists and the artifacts of the versions
that are new or changed. Since a link need not change its version, kept artifacts older than
:data:`VERSION_TTL_S` are read again too, at most :data:`REFRESH_PER_PAGE` per page (the least
recently read first), so no page pays for reading every version again at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, InfraError, UsageError
from featurekit.redaction import redact_text

if TYPE_CHECKING:
    from featurekit.lineage.client import RegistryClient
    from featurekit.lineage.tree import Node

TIMEOUT_S = 2.0          # at most; a smaller registry.timeout_s wins
DOWN_FOR_S = 10.0        # how long an unreachable registry is taken as down without asking again
VERSION_TTL_S = 30.0     # how long a version's artifacts are kept while the version is unchanged
FETCHERS = 8             # versions whose artifacts are asked at the same time
REFRESH_PER_PAGE = 20    # expired versions read again by one page, least recently read first

T = TypeVar("T")


class RegistryUnreachable(InfraError):
    """The Model Registry could not be asked, or did not answer as one: ``url`` (masked) and ``reason``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"Model Registry unreachable at {url}: {reason}")


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str

    @property
    def href(self) -> str:
        return lineage_href(self.model, self.version)


@dataclass
class Model:
    name: str
    description: str = ""
    versions: list[str] = field(default_factory=list)

    def pages(self) -> list[ModelVersion]:
        return [ModelVersion(self.name, v) for v in self.versions]


def lineage_href(model: str, version: str) -> str:
    return f"/lineage/{quote(model, safe='')}/{quote(version, safe='')}"


def node_href(link: Mapping[str, str]) -> str | None:
    """The catalog page a lineage node is about (see :class:`featurekit.lineage.tree.Node`), or None."""
    if link.get("model") and link.get("version"):
        return lineage_href(link["model"], link["version"])
    if link.get("run_id"):
        return f"/runs/{quote(link['run_id'], safe='')}"
    if link.get("view"):
        return f"/features/{quote(link['view'], safe='')}"
    if link.get("job"):
        return f"/jobs/{quote(link['job'], safe='')}"
    return None


class ModelRegistry:
    """The catalog's one client of the environment's Model Registry (thread-safe; see the module doc)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        conf = settings.registry
        self.settings = settings.model_copy(update={"registry": conf.model_copy(
            update={"timeout_s": min(conf.timeout_s, TIMEOUT_S), "retries": 0})})
        self.url = redact_text(conf.effective_url)
        self._clock = clock
        self._lock = threading.Lock()
        self._client: RegistryClient | None = None
        self._down: tuple[float, str] | None = None         # (since, reason)
        self._views: dict[str, tuple[float, Any, frozenset[str]]] = {}   # version id -> (at, updated, views)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def ask(self, question: Callable[[RegistryClient], T]) -> T:
        """``question`` answered by the registry; :class:`RegistryUnreachable` when it cannot be.
        A :class:`~featurekit.errors.NotFound` (an unknown model or version) passes through."""
        from featurekit.lineage.client import RegistryError, RegistryUnavailable, registry_client

        with self._lock:
            if self._down is not None and self._clock() - self._down[0] < DOWN_FOR_S:
                raise RegistryUnreachable(self.url, self._down[1])
            try:
                if self._client is None:
                    self._client = registry_client(self.settings)
            except ConfigError as exc:     # a token variable that is not set: conf, not the network
                raise RegistryUnreachable(self.url, redact_text(str(exc))) from None
            client = self._client
        try:
            answer = question(client)
        except RegistryUnavailable as exc:
            reason = redact_text(str(exc))
            with self._lock:
                self._down = (self._clock(), reason)
            raise RegistryUnreachable(self.url, reason) from None
        except UsageError:          # NotFound: an unknown model or version (a ConfigError too)
            raise
        except (RegistryError, ConfigError) as exc:   # refused, not a Model Registry's answer, a rejected token
            raise RegistryUnreachable(self.url, redact_text(str(exc))) from None
        with self._lock:
            self._down = None
        return answer

    def models(self) -> list[Model]:
        """Every registered model with its versions, by name (two requests)."""
        return self.ask(_models)

    def using(self, view: str) -> list[ModelVersion]:
        """The model versions linked to a feature set of ``view`` (a materialization or an offline
        read) or to a training set that read it, by model and version."""
        return self.ask(lambda client: self._using(client, view))

    def warm(self) -> None:
        """Read every version's artifacts once, so the first feature page after start-up does not
        pay for them all (a server calls it in the background; a registry that is down is left to
        the pages to report)."""
        try:
            self.ask(lambda client: self._using(client, ""))
        except (RegistryUnreachable, UsageError):
            pass

    def tree(self, project: Project, model: str, version: str) -> Node:
        """The lineage tree of :func:`featurekit.pipeline.lineage.show`."""
        from featurekit.pipeline import lineage

        return self.ask(lambda client: lineage.show(project, self.settings, model=model, version=version,
                                                    client=client))

    def _using(self, client: RegistryClient, view: str) -> list[ModelVersion]:
        from featurekit.lineage.client import DATASET

        names = {m["id"]: m.get("name", "") for m in client.registered_models()}
        versions = {v["id"]: v for v in client.model_versions()}
        now = self._clock()
        with self._lock:
            kept = {ident: self._views[ident] for ident in versions if ident in self._views}
        changed = [i for i, v in versions.items() if i not in kept or kept[i][1] != v.get("lastUpdateTimeSinceEpoch")]
        expired = sorted((i for i in kept if i not in changed and now - kept[i][0] >= VERSION_TTL_S),
                         key=lambda i: kept[i][0])
        stale = changed + expired[:REFRESH_PER_PAGE]           # the other expired ones: on the next pages

        def fetch(ident: str) -> tuple[float, Any, frozenset[str]]:
            artifacts = client.version_artifacts(ident, DATASET)
            return now, versions[ident].get("lastUpdateTimeSinceEpoch"), views_of(artifacts, self.settings.feast.project)

        if stale:
            # one request per version, side by side: a registry of many versions answers in fewer round trips
            with ThreadPoolExecutor(max_workers=min(FETCHERS, len(stale))) as pool:
                fresh = dict(zip(stale, pool.map(fetch, stale)))
            kept.update(fresh)
            with self._lock:
                self._views.update(fresh)
        found = {ModelVersion(names[v["registeredModelId"]], str(v.get("name", ""))) for i, v in versions.items()
                 if names.get(v.get("registeredModelId")) and view in kept[i][2]}
        return sorted(found, key=lambda mv: (mv.model, mv.version))


def _models(client: RegistryClient) -> list[Model]:
    models = {m["id"]: Model(str(m.get("name", "")), str(m.get("description") or ""))
              for m in client.registered_models()}
    for version in client.model_versions():
        model = models.get(version.get("registeredModelId"))
        if model is not None:
            model.versions.append(str(version.get("name", "")))
    return sorted(models.values(), key=lambda m: m.name)


def views_of(artifacts: list[dict[str, Any]], feast_project: str) -> frozenset[str]:
    """The feature views of ``feast_project`` whose data the DataSet artifacts of a version hold:
    feature sets (materialized or read offline) name theirs, training sets the views they read."""
    from featurekit.lineage.client import untagged
    from featurekit.lineage.registry_lineage import FEATURE_SET, KIND, OFFLINE_FEATURE_SET, TRAINING_SET

    views: set[str] = set()
    for artifact in artifacts:
        props = untagged(artifact.get("customProperties"))
        if props.get("feast_project") != feast_project:
            continue
        if props.get(KIND) in (FEATURE_SET, OFFLINE_FEATURE_SET) and props.get("feast_view"):
            views.add(str(props["feast_view"]))
        elif props.get(KIND) == TRAINING_SET:
            read = _json(props.get("feature_views"))
            views.update(str(v) for v in (read if isinstance(read, dict) else {}))
            refs = _json(props.get("feature_sets"))
            views.update(str(r["view"]) for r in (refs if isinstance(refs, list) else [])
                         if isinstance(r, dict) and r.get("view"))
    return frozenset(views)


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


__all__ = ["Model", "ModelRegistry", "ModelVersion", "RegistryUnreachable", "lineage_href", "node_href", "views_of"]
