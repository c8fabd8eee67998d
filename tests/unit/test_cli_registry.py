"""Every click command in the product is reachable from `batchline`.

Command modules never import the root (no cycle), so nothing registers itself by
being imported: a command the root does not add is silently missing from the
tool. This test finds every module-level command in the package and asks the
root for it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import click

import batchline
from batchline.cli import LAZY_COMMANDS, cli
from batchline.cli.lazy import LazyCommand

# `__main__` modules run their command when imported; migrations need Alembic's context.
SKIPPED = ("__main__", "batchline.migrations")


def _product_modules() -> Iterator[str]:
    for info in pkgutil.walk_packages(batchline.__path__, "batchline."):
        if not any(part in info.name for part in SKIPPED):
            yield info.name


def _defined_commands() -> dict[str, click.Command]:
    found = {}
    for name in _product_modules():
        for attribute, value in vars(importlib.import_module(name)).items():
            defined_here = getattr(getattr(value, "callback", None), "__module__", None) == name
            if isinstance(value, click.Command) and defined_here:
                found[f"{name}.{attribute}"] = value
    return found


def _reachable(group: click.Group) -> Iterator[click.Command]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield command
        if isinstance(command, click.Group):
            yield from _reachable(command)


def test_cli__every_command_in_the_product_is_registered() -> None:
    reachable = {id(cli)} | {id(command) for command in _reachable(cli)}
    missing = sorted(where for where, c in _defined_commands().items() if id(c) not in reachable)
    assert missing == [], f"not added to the root in batchline.cli: {missing}"


def test_cli__the_root_adds_only_stand_ins_from_the_table() -> None:
    assert sorted(cli.commands) == sorted(LAZY_COMMANDS)
    assert all(isinstance(c, LazyCommand) for c in cli.commands.values())
