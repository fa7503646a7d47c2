"""The FastAPI app of ``featurekit ui``: one route per page, Jinja2 templates and a stylesheet
shipped in the package.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so reading the run log
never blocks the event loop. An unknown name is the 404 page with the reads' message and a link
to the closest known name; an ambiguous run id a 409 page; a lineage page whose Model Registry
cannot be asked a 503 page naming it and why (the other pages say so in their model sections); any
other error of featurekit a 500 page with its (masked) message.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from featurekit import __version__
from featurekit.api.reads import ApiError, feature_sets, redact_text
from featurekit.config import Project, Settings
from featurekit.errors import FeaturekitError, NotFound
from featurekit.ui import pages
from featurekit.ui.lineage import ModelRegistry, RegistryUnreachable, lineage_href
from featurekit.yamlconf.names import suggest


def templates() -> Jinja2Templates:
    # autoescape: names, paths and messages are user data; StrictUndefined: a typo in a template fails its test
    env = jinja2.Environment(loader=jinja2.PackageLoader("featurekit.ui", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return Jinja2Templates(env=env)


def create_ui(project: Project, settings: Settings, warm: bool = False) -> FastAPI:
    """The web catalog of one project in one environment (read-only; files are read per request).
    ``warm``: at start-up, read the Model Registry's versions in the background (see
    :meth:`ModelRegistry.warm`)."""
    registry = ModelRegistry(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm:
            threading.Thread(target=registry.warm, name="featurekit-ui-warm", daemon=True).start()
        yield
        registry.close()

    ui = FastAPI(title="featurekit", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                 lifespan=lifespan)
    ui.mount("/static", StaticFiles(packages=[("featurekit.ui", "static")]), name="static")
    html = templates()
    site = {"env": settings.env, "project": project.root.name, "version": __version__}

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return html.TemplateResponse(request, template, {"site": site, **values}, status_code=status)

    def not_found(request: Request, what: str, name: str, detail: str, known: list[str],
                  href: Callable[[str], str] | None = None) -> HTMLResponse:
        closest = suggest(name, known) if name else None
        return page(request, "404.html", 404, what=what, name=name, detail=redact_text(detail), closest=closest,
                    closest_href=href(closest) if closest and href else None)

    # What each page's name names, and where its close match is looked for (only on a 404).
    kinds: dict[str, tuple[str, Callable[[], list[str]]]] = {
        "job": ("job", lambda: sorted(p.stem for p in project.job_files())),
        "run": ("run", lambda: []),
        "feature": ("feature view", lambda: [v.view for v in feature_sets(project, settings)[0]]),
    }

    @ui.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> HTMLResponse:
        if exc.status == 404:
            route = request.scope.get("route")
            what, known = kinds.get(getattr(route, "name", ""), ("page", lambda: []))
            return not_found(request, what, request.path_params.get("name", ""), exc.detail, known())
        return page(request, "error.html", exc.status, detail=redact_text(exc.detail))

    @ui.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return not_found(request, "page", "", exc.text(), [])

    @ui.exception_handler(FeaturekitError)
    async def _error(request: Request, exc: FeaturekitError) -> HTMLResponse:
        return page(request, "error.html", 500, detail=redact_text(str(exc)))

    @ui.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> HTMLResponse:
        if exc.status_code == 404:
            return not_found(request, "page", "", f"no page at {request.url.path}", [])
        return page(request, "error.html", exc.status_code, detail=str(exc.detail))

    @ui.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        where = [".".join(str(part) for part in e.get("loc", ())[1:]) for e in exc.errors()]
        lines = [f"{w}: {e.get('msg', '')}" for w, e in zip(where, exc.errors())]
        return page(request, "error.html", 422, detail=redact_text("; ".join(lines)))

    @ui.get("/", response_class=HTMLResponse)
    def index(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
        return page(request, "index.html", **pages.index(project, settings, q), **pages.registered_models(registry, q))

    @ui.get("/jobs/{name}", response_class=HTMLResponse)
    def job(request: Request, name: str) -> HTMLResponse:
        return page(request, "job.html", **pages.job(project, settings, name))

    @ui.get("/runs/{name}", response_class=HTMLResponse)
    def run(request: Request, name: str) -> HTMLResponse:
        return page(request, "run.html", **pages.run(settings, name))

    @ui.get("/features/{name}", response_class=HTMLResponse)
    def feature(request: Request, name: str) -> HTMLResponse:
        return page(request, "feature.html", **pages.feature(project, settings, name),
                    **pages.models_using(registry, name))

    # a model name may hold "/" (quoted as %2F in its links, which the route sees decoded)
    @ui.get("/lineage/{model:path}/{version}", response_class=HTMLResponse)
    def lineage(request: Request, model: str, version: str) -> HTMLResponse:
        try:
            return page(request, "lineage.html", **pages.lineage(project, registry, model, version))
        except RegistryUnreachable as exc:
            return page(request, "error.html", 503, detail=str(exc))
        except NotFound as exc:
            return lineage_not_found(request, model, version, exc)

    def lineage_not_found(request: Request, model: str, version: str, exc: NotFound) -> HTMLResponse:
        """An unknown model: the closest model's page (at this version if it has one, else its
        newest); an unknown version: the model's closest version."""
        try:
            models = {m.name: m.versions for m in registry.models()}
        except RegistryUnreachable:
            models = {}
        if exc.kind == "registered model":
            known = sorted(models)
            detail = f"unknown model {model!r} in the Model Registry at {registry.url}" + _hint(model, known, "models")

            def closest(m: str) -> str:             # a model without versions has no lineage page: the list
                return lineage_href(m, version if version in models[m] else models[m][-1]) if models[m] else "/#models"

            return not_found(request, "model", model, detail, known, closest)
        known = models.get(model, [])
        detail = f"model {model!r} has no version {version!r}" + _hint(version, known, "versions")
        return not_found(request, f"version of model {model}", version, detail, known,
                         lambda v: lineage_href(model, v))

    return ui


def _hint(word: str, known: list[str], what: str) -> str:
    """`` — did you mean 'x'?`` when one is close, else the known names."""
    close = suggest(word, known)
    if close:
        return f" — did you mean {close!r}?"
    return f" ({what}: {', '.join(known)})" if known else f" (no {what})"


__all__ = ["create_ui"]
