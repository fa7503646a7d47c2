"""``featurekit registry serve``: an embedded Kubeflow Model Registry for laptops and CI.

It speaks the part of the Model Registry REST API (OpenAPI spec ``v1alpha3``, vendored in
``tests/contracts/``) that featurekit and the official ``model-registry`` client use, under both
``/api/model_registry/v1alpha3`` and ``/api/model_registry/v1``: registered models, their
versions, artifacts of every type (model, doc, dataset, metric, parameter), the many-to-many
link of artifacts to model versions, the serving side (serving environments, their inference
services, the serve models of those), the singular "find" endpoints (``GET /registered_model``,
``/model_version``, ``/artifact``, ``/model_artifact``, ``/serving_environment``,
``/inference_service``), ``filterQuery`` equality, paging and ordering. Bodies are checked with pydantic (unknown fields are refused with a close match);
errors are the spec's ``{"code", "message"}`` with 400/404/409/422. Nothing can be deleted:
resources are archived through ``state``.

A product of its own: it imports nothing of featurekit's batch side, and featurekit's lineage
client (:mod:`featurekit.lineage`) talks to it over HTTP like to any other Model Registry.
:mod:`app` is the FastAPI app, :mod:`routes` the operations, :mod:`models` the request bodies,
:mod:`store` the SQLite storage with :mod:`filters` for ``filterQuery``.

Not served: experiments and experiment runs, authentication (a bearer token is accepted and
ignored). Every create answers 201, ``POST /inference_services`` included, which the spec alone
writes as 200: the official client reads only a 201 as the created resource.
"""

from featurekit.registry.app import create_registry_app

__all__ = ["create_registry_app"]
