"""The Feast adapter: definitions from the job specs, the store file, online writes and counts.

The only package (with ``pipeline``) that imports ``feast``; it does so inside functions,
because ``import feast`` costs seconds.
"""

import warnings

# Feast warns on every SparkSource it builds (ours, and each one read back from the registry).
warnings.filterwarnings("ignore", message="The spark data source API is an experimental feature",
                        category=RuntimeWarning)
