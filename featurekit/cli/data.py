"""Commands that put things in place before the first run: the jars and a demo data set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from featurekit.cli.options import Env, options
from featurekit.cli.present import out
from featurekit.config import load_settings
from featurekit.errors import InfraError


def setup(ctx: typer.Context, env: Env = "local") -> None:
    """Fetch the Delta Lake jars (and the env's spark.packages) once into the project's cache.

    The only network step; the job image runs it at build time to bake the jars in.
    """
    import shutil

    from featurekit.engine.jars import ensure_jars, packages_of

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise InfraError("Java is not installed: Spark needs a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)")
    settings = load_settings(options(ctx).project(), env)
    packages = packages_of(settings.spark.packages)
    jars = ensure_jars(settings.jars_dir, packages)
    out.print(f"{', '.join(packages)}: {len(jars)} jar(s) in {settings.jars_dir}")


def generate_demo_data(
    ctx: typer.Context,
    rows: Annotated[Optional[int], typer.Option(help="Trip rows to generate (default 200,000; with --arrival: the base set's).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed, same seed same files (default 7; with --arrival: the base set's).")] = None,
    arrival: Annotated[Optional[int], typer.Option(min=1, help="Add day K of newly arrived trips (trips/arrival-K.csv) to the base set.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder (default: the raw_root var).")] = None,
    env: Env = "local",
) -> None:
    """Write a realistic raw data set (trips, driver updates, ~0.5% dirty rows), or a day that arrives after it."""
    from featurekit.demo.arrivals import arrival_path, generate_arrival
    from featurekit.demo.generate import generate_raw

    target = out_dir or Path(load_settings(options(ctx).project(), env).vars["raw_root"])
    if arrival is not None:
        added = generate_arrival(target, arrival, rows=rows, seed=seed)
        out.print(f"wrote {arrival_path(target, arrival)}: "
                  + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in added.to_dict().items()))
        return
    summary = generate_raw(target, rows=200_000 if rows is None else rows, seed=7 if seed is None else seed)
    out.print(f"wrote {target}: " + ", ".join(f"{k}={v:,}" for k, v in summary.to_dict().items()))
