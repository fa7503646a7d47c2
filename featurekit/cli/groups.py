"""A typer group with a default command, for ``featurekit runs [JOB]`` beside
``featurekit runs show RUN_ID``."""

from __future__ import annotations

from typing import Any, Optional

import click
from typer.core import TyperCommand, TyperGroup

DEFAULT = "list"


class DefaultCommandGroup(TyperGroup):
    """A group whose first word names one of its commands, or else belongs to its default
    command (registered as ``DEFAULT`` with :class:`SpeaksAsGroup`, hidden).

    The command word may stand after options (``runs --env k8s show RUN_ID``), as it could when
    the group was one command; every other command line, ``--help`` and no words at all
    included, goes whole to the default command, so ``runs list`` still lists a job named list.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        at = _first_word(args, self._options_with_values())
        if at is not None and args[at] != DEFAULT and args[at] in self.commands:
            args = [args[at], *args[:at], *args[at + 1:]]
        else:
            args = [DEFAULT, *args]
        return super().parse_args(ctx, args)

    def _options_with_values(self) -> set[str]:
        return {name for command in self.commands.values() for param in command.params
                if param.param_type_name == "option" and not getattr(param, "is_flag", False)
                and not getattr(param, "count", False)
                for name in (*param.opts, *param.secondary_opts)}


class SpeaksAsGroup(TyperCommand):
    """The default command of a :class:`DefaultCommandGroup`: it runs in the group's place, so its
    help, usage and errors read ``featurekit runs [OPTIONS] [JOB]``, as a user types it."""

    def make_context(self, info_name: Optional[str], args: list[str], parent: Optional[click.Context] = None,
                     **extra: Any) -> click.Context:
        if parent is not None:
            info_name, parent = parent.info_name, parent.parent
        return super().make_context(info_name, args, parent=parent, **extra)


def _first_word(args: list[str], with_values: set[str]) -> Optional[int]:
    """The index of the first argument that is not an option or an option's value."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return index + 1 if index + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return index
        index += 2 if arg in with_values else 1
    return None
