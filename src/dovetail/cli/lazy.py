"""Commands whose module is imported on first use, so ``dovetail --help`` stays fast.

The command list shows each lazy command's declared help without importing it; running the
command (or asking for its own ``--help``) imports its module and builds it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # only for annotations: the click that this typer builds its commands with
    from typer import _click as click


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command defined in ``module`` as ``attribute``: a command function or a ``Typer``."""

    name: str
    module: str
    attribute: str
    help: str
    """The help shown in the command list: the first paragraph of the command's docstring."""

    def load(self) -> click.Command:
        """Import the module and build the click command (named ``name``)."""
        target: Any = getattr(import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):  # a group, even of one subcommand (add_typer's way)
            command: click.Command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(self.name)(target)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


class Placeholder(TyperCommand):
    """Stands for a lazy command in the command list until it is resolved."""


class LazyGroup(TyperGroup):
    """A command group that lists its commands in ``order`` and loads ``lazy`` ones on use.

    Subclasses set ``lazy`` (the commands defined in other modules) and ``order`` (the order
    a user meets the commands in; commands not named come after, in definition order).
    """

    lazy: ClassVar[tuple[LazyCommand, ...]] = ()
    order: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for spec in self.lazy:
            self.commands.setdefault(spec.name, Placeholder(spec.name, help=spec.help))

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Command names in the order a user meets them."""
        rank = {name: index for index, name in enumerate(self.order)}
        names = list(self.commands)
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), names.index(name)))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Load the named command when it is still a placeholder, then resolve as usual."""
        if args:
            self.load(args[0])
        return super().resolve_command(ctx, args)

    def load(self, name: str) -> click.Command | None:
        """The command ``name``, importing its module first when it is lazy."""
        command = self.commands.get(name)
        if isinstance(command, Placeholder):
            spec = next(spec for spec in self.lazy if spec.name == name)
            command = self.commands[name] = spec.load()
        return command
