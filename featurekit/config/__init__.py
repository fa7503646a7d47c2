"""Project layout and per-environment settings (``conf/base`` merged with ``conf/<env>``)."""

from featurekit.config.project import Project, find_project
from featurekit.config.settings import Settings, load_settings

__all__ = ["Project", "Settings", "find_project", "load_settings"]
