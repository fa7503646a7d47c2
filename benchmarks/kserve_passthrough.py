"""The floor of a KServe transformer hop: ``featurekit transformer``'s server with nothing of
featurekit's work. ``benchmarks/online.py --transformer`` runs it beside the transformer.

The same KServe ``ModelServer`` set-up as :func:`featurekit.online.kserve_model.serve` (V1, the
same worker count, no gRPC, no docs, no latency logging) serving a
:class:`~featurekit.online.kserve_model.FeatureTransformer` whose ``preprocess`` hands the
payload on unchanged: the request is parsed and answered by KServe and forwarded through
featurekit's kept-open aiohttp session, but nothing is looked up. What the transformer costs
above this is featurekit's own (the lookup, the enrichment, its log redaction).

    python benchmarks/kserve_passthrough.py --port 8092 --predictor 127.0.0.1:8081 --model-name bench
"""

from __future__ import annotations

import argparse
from typing import Any

from featurekit.online.kserve_model import FeatureTransformer, ServerArgs, kserve


class PassThrough(FeatureTransformer):
    """:class:`FeatureTransformer` with its forwarding and without an enricher."""

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, None, config)  # type: ignore[arg-type]  # preprocess never reads it

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return payload


def serve(args: ServerArgs) -> None:
    """As :func:`featurekit.online.kserve_model.serve`, with :class:`PassThrough` as the model."""
    config = kserve.PredictorConfig(predictor_host=args.predictor_host, predictor_protocol=args.protocol)
    server = kserve.ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False,
                                predictor_config=config, enable_docs_url=False, enable_latency_logging=False)
    server.start([PassThrough(args.model_name, config)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--predictor", required=True, help="host:port of the predictor")
    parser.add_argument("--model-name", required=True, help="served as /v1/models/<name>:predict")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(ServerArgs(args.model_name, args.predictor, args.port, args.workers, "v1"))


if __name__ == "__main__":
    main()
