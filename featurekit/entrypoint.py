"""The main file given to ``spark-submit`` (locally or by the Spark operator).

It runs the same command line as the ``featurekit`` console script, so
``spark-submit ... entrypoint.py run JOB --env ENV`` and ``featurekit run JOB --env ENV``
take one code path.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a file, Python puts this package's folder first on sys.path; its modules
    # must not shadow top-level ones (e.g. `errors`, `config`).
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    from featurekit.cli import main

    sys.exit(main())
