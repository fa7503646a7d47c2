"""Job specs: YAML with positions, pydantic models, cross-checks, fingerprints.

Pure Python: nothing here imports Spark, Feast or an HTTP client, so that
``featurekit validate`` answers in well under a second.
"""

from featurekit.spec.loader import LoadedJob, load_job, load_jobs
from featurekit.spec.models import JobSpec

__all__ = ["JobSpec", "LoadedJob", "load_job", "load_jobs"]
