"""The catalog the index page lists and searches: feature views, features, jobs and entities,
from the jobs' specs and the run log's materialization records (no table is opened)."""

from __future__ import annotations

from dataclasses import dataclass, field

from featurekit.api.models import FeatureSetSummary, JobSummary
from featurekit.yamlconf.names import suggest


@dataclass(frozen=True)
class Feature:
    view: str
    name: str
    type: str


@dataclass
class Catalog:
    jobs: list[JobSummary]
    views: list[FeatureSetSummary]
    features: list[Feature]
    entities: dict[str, list[str]]          # entity -> the views keyed by it
    problems: list[str] = field(default_factory=list)

    def search(self, query: str) -> Catalog:
        """The part of the catalog whose names or descriptions hold every word of ``query``
        (case-insensitive); an empty query keeps everything."""
        words = query.lower().split()

        def hit(*texts: str | None) -> bool:
            text = " ".join(t for t in texts if t).lower()
            return all(w in text for w in words)

        return Catalog(
            jobs=[j for j in self.jobs if hit(j.name, j.description, j.owner)],
            views=[v for v in self.views if hit(v.view, v.job, v.entity)],
            features=[f for f in self.features if hit(f.name, f.view, f.type)],
            entities={e: vs for e, vs in self.entities.items() if hit(e)},
            problems=self.problems,
        )

    @property
    def empty(self) -> bool:
        return not (self.jobs or self.views or self.features or self.entities)

    def names(self) -> list[str]:
        """Every name in the catalog, for a close match to a query that finds nothing."""
        return sorted({*(j.name for j in self.jobs), *(v.view for v in self.views), *(f.name for f in self.features),
                       *self.entities})

    def closest(self, query: str) -> str | None:
        return suggest(query, self.names()) if query else None


def catalog(jobs: list[JobSummary], views: list[FeatureSetSummary], schemas: dict[str, dict[str, str]],
            problems: list[str]) -> Catalog:
    """``schemas``: per view, its features and their types as last materialized."""
    features = [Feature(view, name, str(kind)) for view, fields in sorted(schemas.items())
                for name, kind in fields.items()]
    entities: dict[str, list[str]] = {}
    for view in views:
        if view.entity:
            entities.setdefault(view.entity, []).append(view.view)
    return Catalog(jobs=sorted(jobs, key=lambda j: j.name), views=views, features=features,
                   entities=dict(sorted(entities.items())), problems=problems)
