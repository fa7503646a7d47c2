"""What every command shares: the options given before it (on the typer context), ``--env``, and
the parsing of command-line times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from featurekit.config import Project, Settings, find_project
from featurekit.config.project import is_project
from featurekit.errors import ConfigError

Env = Annotated[str, typer.Option("--env", "-e", help="Environment: conf/base + conf/<env>.")]


@dataclass
class Options:
    """``featurekit [--project P] [--debug] COMMAND``: set by the root callback, read by the
    commands through ``ctx.obj`` and by ``main`` when it maps an error to an exit code."""

    project_dir: Optional[Path] = None
    debug: bool = False

    def project(self) -> Project:
        """The project of ``--project``, else the one found from the working directory."""
        explicit = self.project_dir
        if explicit is not None:
            root = Path(explicit).resolve()
            if not is_project(root):
                raise ConfigError.single(f"--project {explicit}: no conf/ and jobs/ folders there", file=str(explicit))
            return Project(root)
        return find_project()

    def spark(self, settings: Settings) -> Settings:
        """``settings`` for a command that runs Spark: with ``--debug`` Spark's log shows on
        stderr as well as in its file."""
        return settings.with_console_log() if self.debug else settings

    def quiet_query_context(self) -> None:
        """PySpark logs every analysis error it raises, with its Python stack, as a JSON line on
        stderr; featurekit reports the same error in one line at the step of the spec that
        caused it, so that log is kept for ``--debug``."""
        if self.debug:
            return
        import logging

        from pyspark.logger import PySparkLogger

        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def options(ctx: typer.Context) -> Options:
    """The options of this invocation (a fresh set when a command is invoked without ``main``)."""
    return ctx.ensure_object(Options)


def when(value: Optional[str], option: str) -> Optional[datetime]:
    """An ISO 8601 time from ``option`` (UTC when it names no zone); a config error otherwise."""
    from datetime import UTC

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError.single(f"expected an ISO 8601 time like 2026-01-15T00:00:00Z; got {value!r}",
                                 file="command line", field=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
