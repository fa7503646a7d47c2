"""Finding the user's project: the nearest folder upwards with ``conf/`` and ``jobs/``.

Like git finds its repository, featurekit finds the project from the working directory,
never from where the package is installed, so one installation serves any project laid
out this way. ``FEATUREKIT_PROJECT`` names the folder explicitly (for schedulers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featurekit.errors import ConfigError
from featurekit.yamlconf.names import did_you_mean

PROJECT_ENV = "FEATUREKIT_PROJECT"


@dataclass(frozen=True)
class Project:
    """A featurekit project folder."""

    root: Path

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    def job_files(self) -> list[Path]:
        return sorted(p for p in self.jobs_dir.glob("*.y*ml") if p.suffix in {".yaml", ".yml"})

    def environments(self) -> list[str]:
        return sorted(p.name for p in self.conf_dir.iterdir() if p.is_dir() and p.name != "base")

    def job_path(self, job: str) -> Path:
        """A job by name (``jobs/<name>.yaml``) or by path (absolute or from the cwd)."""
        candidate = Path(job)
        if candidate.suffix in {".yaml", ".yml"} or os.sep in job:
            if candidate.is_file():
                return candidate.resolve()
            raise ConfigError.single(f"job file not found: {job}", file=job)
        for suffix in (".yaml", ".yml"):
            path = self.jobs_dir / f"{job}{suffix}"
            if path.is_file():
                return path
        names = [p.stem for p in self.job_files()]
        raise ConfigError.single(
            f"no job named {job!r} in {self.jobs_dir.name}/" + did_you_mean(job, names)
            + (f" (jobs: {', '.join(names)})" if names else ""),
            file="jobs",
        )

    def shown(self, path: Path) -> str:
        """``path`` relative to the project when inside it, for messages."""
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)


def is_project(folder: Path) -> bool:
    return (folder / "conf").is_dir() and (folder / "jobs").is_dir()


def find_project(start: Path | None = None) -> Project:
    """The project containing ``start`` (default: the working directory)."""
    explicit = os.environ.get(PROJECT_ENV)
    if explicit:
        root = Path(explicit).resolve()
        if not is_project(root):
            raise ConfigError.single(f"{PROJECT_ENV}={explicit} has no conf/ and jobs/ folders", file=PROJECT_ENV)
        return Project(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return Project(folder)
    raise ConfigError.single(
        f"no featurekit project here: no folder from {here} upwards has both conf/ and jobs/ "
        f"(see the README's project layout, or set {PROJECT_ENV})",
        file=str(here),
    )
