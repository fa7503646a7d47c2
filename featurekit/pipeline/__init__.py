"""The library API: load a job, plan it, run it (the CLI is a thin layer over this)."""

from featurekit.pipeline.core import GateFailed, load, new_run_id, run, session, spark_log, submit_command
from featurekit.pipeline.report import RunResult, StepCount, list_runs, read_run

__all__ = ["GateFailed", "RunResult", "StepCount", "list_runs", "load", "new_run_id", "read_run", "run",
           "session", "spark_log", "submit_command"]
