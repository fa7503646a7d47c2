"""``featurekit api``: a read-only REST API over what featurekit records (FastAPI, OpenAPI at ``/docs``).

Under ``/api/v1``: jobs (spec, fingerprint, recent runs), runs (their reports), feature sets
(per view: the materializations recorded, with Delta versions and run ids) and the lineage of a
model version (from the Model Registry). Unknown names are a 404 with a close match; an
ambiguous run id prefix a 409; a Model Registry that cannot be reached a 503. No answer holds a
secret: tokens are never read into a response, and secret-looking values are masked.

``create_api(project, settings)`` returns the app; ``uvicorn.run(app)`` serves it.
"""

from featurekit.api.app import create_api

__all__ = ["create_api"]
