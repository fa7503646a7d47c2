"""``featurekit transformer``: the :class:`~featurekit.online.transformer.Enricher` as a KServe
transformer, served by KServe's own ``ModelServer`` (V1 ``/v1/models/<name>:predict``; the
enriched request goes on to the predictor, whose answer comes back unchanged).

KServe is imported here only (the CLI imports this module when it serves), with ``sys.argv``
hidden: ``kserve.model_server`` parses the command line when imported (``parse_known_args``,
which takes abbreviations, so featurekit's own ``--model`` would be read as KServe's
``--model_name``); everything it needs is passed explicitly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from featurekit.online.transformer import BadRequest, Enricher

@dataclass(frozen=True)
class ServerArgs:
    """What KServe's controller appends to a transformer's arguments."""

    model_name: str
    predictor_host: str
    http_port: int = 8080
    workers: int = 1
    protocol: str = "v1"


def _import_kserve() -> Any:
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve


kserve = _import_kserve()
from kserve.errors import InvalidInput  # noqa: E402  (after kserve, imported with sys.argv hidden)


class FeatureTransformer(kserve.Model):  # type: ignore[misc,name-defined]
    """Adds the linked online features to each instance, then lets ``Model.predict`` forward.

    At module level and holding only picklable state: with ``--workers N`` KServe pickles the
    model into each worker process."""

    def __init__(self, name: str, enricher: Enricher, config: Any) -> None:
        super().__init__(name)
        self.enricher, self._config = enricher, config
        self.ready = True

    @property
    def predictor_config(self) -> Any:
        # KServe keeps it in a context variable, which its worker processes do not inherit
        return self._config

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, kserve.InferRequest):
            raise InvalidInput('the featurekit transformer takes the V1 protocol ({"instances": [...]}) only')
        try:
            return self.enricher.enrich_v1(payload)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None


def serve(enricher: Enricher, args: ServerArgs) -> None:
    """Serve the transformer over ``enricher`` until stopped."""
    config = kserve.PredictorConfig(predictor_host=args.predictor_host, predictor_protocol=args.protocol)
    server = kserve.ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False,
                                predictor_config=config, enable_docs_url=False, enable_latency_logging=False)
    server.start([FeatureTransformer(args.model_name, enricher, config)])
