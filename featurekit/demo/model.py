"""The demo's model: a toy linear model fitted on the demo's training set, and a KServe predictor
serving it, so ``make demo`` can send one request through ``featurekit transformer`` end to end.

It stands in for a model a data scientist would train: it reads the training set that
``featurekit training-set`` wrote (Delta), fits ``fare_avg_24h`` from ``trips_24h`` and ``rating``
by least squares, and writes ``model.json``. The predictor takes KServe's own arguments
(``--model_name``, ``--http_port``...) plus ``--model_dir``, as a custom KServe predictor does;
an instance whose inputs are null (an entity the online store does not hold) gets a null
prediction.

    python -m featurekit.demo.model train --training-set data/lake/training/driver_activity --out data/models/driver-eta/demo
    python -m featurekit.demo.model serve --model_dir data/models/driver-eta/demo --model_name driver-eta --http_port 8091
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.json"
INPUTS = ("trips_24h", "rating")
TARGET = "fare_avg_24h"


def train(training_set: Path, out: Path) -> dict[str, Any]:
    """Fit the model on the rows of ``training_set`` whose inputs and target are all present;
    write it to ``out/model.json`` and return it."""
    from deltalake import DeltaTable

    table = DeltaTable(str(training_set)).to_pyarrow_table(columns=[*INPUTS, TARGET])
    columns = [table.column(name).to_numpy(zero_copy_only=False).astype("float64") for name in (*INPUTS, TARGET)]
    data = np.column_stack(columns)
    data = data[~np.isnan(data).any(axis=1)]
    if len(data) < len(INPUTS) + 1:
        raise ValueError(f"{training_set}: {len(data)} complete row(s); the model needs at least {len(INPUTS) + 1}")
    design = np.column_stack([data[:, :-1], np.ones(len(data))])
    solution, *_ = np.linalg.lstsq(design, data[:, -1], rcond=None)
    model = {"inputs": list(INPUTS), "target": TARGET, "weights": [float(w) for w in solution[:-1]],
             "intercept": float(solution[-1]), "rows": int(len(data))}
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
    return model


def predict(model: dict[str, Any], instance: dict[str, Any]) -> float | None:
    values = [instance.get(name) for name in model["inputs"]]
    if any(value is None for value in values):
        return None
    return round(float(np.dot(model["weights"], values) + model["intercept"]), 4)


def serve(argv: list[str]) -> None:
    import kserve   # parses sys.argv when imported: KServe's arguments are the predictor's own

    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="folder holding model.json")
    args, _ = parser.parse_known_args(argv)
    model = json.loads((Path(args.model_dir) / MODEL_FILE).read_text(encoding="utf-8"))

    class LinearModel(kserve.Model):  # type: ignore[misc,name-defined]
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.ready = True

        async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            if isinstance(payload, bytes):       # a request sent without a JSON content type
                try:
                    payload = json.loads(payload)
                except ValueError as exc:
                    raise kserve.errors.InvalidInput(f"the body is not JSON: {exc}") from None
            instances = payload.get("instances") if isinstance(payload, dict) else None
            if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
                raise kserve.errors.InvalidInput('expected {"instances": [objects]}')
            return {"predictions": [predict(model, instance) for instance in instances]}

    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, enable_docs_url=False).start(
        [LinearModel(args.model_name)])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m featurekit.demo.model")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train", help="fit the model on a training set")
    fit.add_argument("--training-set", type=Path, required=True)
    fit.add_argument("--out", type=Path, required=True)
    sub.add_parser("serve", help="serve it with KServe (KServe's arguments plus --model_dir)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        serve(rest)
        return 0
    model = train(args.training_set, args.out)
    print(f"fitted {model['target']} = {' + '.join(f'{w:.4g}*{n}' for w, n in zip(model['weights'], model['inputs']))}"
          f" + {model['intercept']:.4g} on {model['rows']} rows; wrote {args.out / MODEL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
