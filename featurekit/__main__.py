"""``python -m featurekit``: the ``featurekit`` command, for a process that has the package but
not the console script on its PATH (a Kubeflow pipeline's task, started with the image's Python)."""

import sys

from featurekit.cli import main

sys.exit(main())
