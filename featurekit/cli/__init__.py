"""The ``featurekit`` command: each command a few lines over the library.

One module per group of commands (``jobs``, ``data``, ``feast``, ``serving``, ``deploy``,
``lineage``), the rich output in ``present``, the shared options in ``options``; ``app`` lists
the commands and maps errors to exit codes: 0 ok, 2 spec or configuration problem, 3 data
problem, 1 infrastructure. Tracebacks only with ``--debug``.
"""

from featurekit.cli.app import app, main

__all__ = ["app", "main"]
