"""``featurekit ui``: a read-only web catalog of a project, rendered on the server.

Pages with stable addresses: ``/`` (search over feature views, features, jobs and entities, and
the lists of each, and the registered models), ``/jobs/<job>``, ``/runs/<run_id>``,
``/features/<view>`` and ``/lineage/<model>/<version>`` (the lineage tree from the Model Registry
as a picture and a list; :mod:`featurekit.ui.lineage` asks the registry). Every page is
plain HTML with one stylesheet shipped in the package: no JavaScript, no CDN, no build step. The
pages read what the metadata API reads (:mod:`featurekit.api.reads`), so what they show is masked
the same way; an unknown name is a 404 page with a close match.

``create_ui(project, settings)`` returns the app; ``uvicorn.run(app)`` serves it.
"""

from featurekit.ui.app import create_ui

__all__ = ["create_ui"]
