"""``featurekit transformer``: the :class:`~featurekit.online.transformer.Enricher` as a KServe
transformer, served by KServe's own ``ModelServer``: V1 ``/v1/models/<name>:predict`` or V2
``/v2/models/<name>/infer`` (JSON tensors), as the predictor speaks (``--protocol``, KServe's
``predictor_protocol``). The enriched request goes on to the predictor in the same protocol, as
``kserve.Model.predict`` would send it but through one kept-open aiohttp session per process
(see :meth:`FeatureTransformer.predict`); its answer comes back unchanged. A request in the
other protocol is a 400 that says which to use.

KServe is imported here only (the CLI imports this module when it serves), with ``sys.argv``
hidden: ``kserve.model_server`` parses the command line when imported (``parse_known_args``,
which takes abbreviations, so featurekit's own ``--model`` would be read as KServe's
``--model_name``); everything it needs is passed explicitly.
"""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

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
# after kserve, imported with sys.argv hidden
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER  # noqa: E402
from kserve.errors import InferenceError, InvalidInput  # noqa: E402
from kserve.model import append_forwardable_headers  # noqa: E402


class FeatureTransformer(kserve.Model):  # type: ignore[misc,name-defined]
    """Adds the linked online features to each request, then forwards it to the predictor.

    At module level and holding only picklable state: with ``--workers N`` KServe pickles the
    model into each worker process (the HTTP session is made in each, on its first request)."""

    def __init__(self, name: str, enricher: Enricher, config: Any) -> None:
        super().__init__(name)
        self.enricher, self._config = enricher, config
        self._session: aiohttp.ClientSession | None = None
        self.ready = True

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session": None}

    @property
    def predictor_config(self) -> Any:
        # KServe keeps it in a context variable, which its worker processes do not inherit
        return self._config

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        protocol = self._config.predictor_protocol
        if protocol == "v1" and isinstance(payload, bytes):
            # KServe decodes JSON only under a JSON content type; `curl -d` sends another
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the body is not JSON: {exc}") from None
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

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:
        """Forward to the predictor, as ``Model.predict`` does over REST (same URL, forwarded
        headers, timeout, retries on connection errors, answers; an error answer is a 500 naming
        it), through one kept-open aiohttp session: KServe's own client (httpx) spends about as
        much CPU per request as the rest of the transformer together (docs/benchmarks.md)."""
        config = self._config
        if config.predictor_protocol == "v1":
            url = f"{config.predictor_base_url}/v1/models/{self.name}:predict"
            body, extra = orjson.dumps(payload), {"Content-Type": "application/json"}
        else:
            url = f"{config.predictor_base_url}/v2/models/{self.name}/infer"
            data, json_length = payload.to_rest()
            if json_length is None:
                body, extra = orjson.dumps(data), {"Content-Type": "application/json"}
            else:           # inputs the request sent as binary go on as binary
                body = data
                extra = {"Content-Type": "application/octet-stream", INFERENCE_CONTENT_LENGTH_HEADER: str(json_length)}
        sent = append_forwardable_headers(headers, extra)
        for attempt in range(max(0, config.retries) + 1):
            try:
                async with self._client().post(url, data=body, headers=sent) as answer:
                    content = await answer.read()
                    status, answered = answer.status, answer.headers
                break
            except aiohttp.ClientConnectionError:
                if attempt >= config.retries:
                    raise
        if status >= 400:
            raise InferenceError(f"the predictor answered {url} with {status}: {content[:500].decode(errors='replace')}")
        if config.predictor_protocol == "v1":
            return orjson.loads(content)
        return kserve.InferResponse.from_bytes(content, int(answered.get(INFERENCE_CONTENT_LENGTH_HEADER, len(content))))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # KServe's client honours a CA bundle given this way (the controller sets it for TLS)
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            context = ssl.create_default_context(cafile=bundle) if bundle else None
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=context if context else True),
                timeout=aiohttp.ClientTimeout(total=self._config.timeout))
        return self._session


def serve(enricher: Enricher, args: ServerArgs) -> None:
    """Serve the transformer over ``enricher`` until stopped."""
    config = kserve.PredictorConfig(predictor_host=args.predictor_host, predictor_protocol=args.protocol)
    server = kserve.ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False,
                                predictor_config=config, enable_docs_url=False, enable_latency_logging=False)
    server.start([FeatureTransformer(args.model_name, enricher, config)])
