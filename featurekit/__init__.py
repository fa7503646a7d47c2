"""featurekit: declarative PySpark prep jobs into Delta Lake, for a Feast feature store.

The library API lives in :mod:`featurekit.pipeline` (``load``, ``plan``, ``run``); this
package root stays import-light so that ``featurekit validate`` never loads Spark.
"""

__version__ = "0.1.0"
