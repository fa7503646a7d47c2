"""``featurekit transformer``: the :class:`~featurekit.online.transformer.Enricher` as a KServe
transformer, served by KServe's own ``ModelServer``: V1 ``/v1/models/<name>:predict`` or V2
``/v2/models/<name>/infer`` (JSON tensors), as the predictor speaks (``--protocol``, KServe's
``predictor_protocol``). The enriched request goes on to the predictor in the same protocol; its
answer comes back unchanged. A request in the other protocol is a 400 that says which to use.

KServe is imported here only (the CLI imports this module when it serves), with ``sys.argv``
hidden: ``kserve.model_server`` parses the command line when imported (``parse_known_args``,
which takes abbreviations, so featurekit's own ``--model`` would be read as KServe's
``--model_name``); everything it needs is passed explicitly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from featurekit.online.transformer import BadRequest, Enricher, Tensor

PROTOCOLS = ("v1", "v2")
_ENDPOINT = {"v1": 'V1 requests ({{"instances": [...]}}) to /v1/models/{name}:predict',
             "v2": 'V2 requests ({{"inputs": [...]}}) to /v2/models/{name}/infer'}


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
        protocol = self._config.predictor_protocol
        if (protocol == "v2") != isinstance(payload, kserve.InferRequest):
            raise InvalidInput(f"this transformer's predictor speaks {protocol.upper()}: send "
                               + _ENDPOINT[protocol].format(name=self.name))
        try:
            if protocol == "v1":
                return self.enricher.enrich_v1(payload)
            given = [Tensor(i.name, i.datatype, list(i.shape), i.data if isinstance(i.data, list) else None)
                     for i in payload.inputs]
            added = self.enricher.enrich_v2(given)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None
        payload.inputs.extend(kserve.InferInput(t.name, t.shape, t.datatype, t.data) for t in added)
        return payload


def serve(enricher: Enricher, args: ServerArgs) -> None:
    """Serve the transformer over ``enricher`` until stopped."""
    config = kserve.PredictorConfig(predictor_host=args.predictor_host, predictor_protocol=args.protocol)
    server = kserve.ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False,
                                predictor_config=config, enable_docs_url=False, enable_latency_logging=False)
    server.start([FeatureTransformer(args.model_name, enricher, config)])
