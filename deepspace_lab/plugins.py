"""Plug-ins found through entry-point groups: one loader for every group whose entries are
typed, named objects (pipeline steps ``deepspace_lab.pipeline_steps``, classes; job kinds
``deepspace_lab.job_kinds``; workflow step kinds ``deepspace_lab.step_kinds``). Built-ins
register in ``pyproject.toml`` the same way a third party's package does."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

from .config import ConfigError

T = TypeVar("T")


def load_plugins(group: str, expected: type[T]) -> dict[str, T]:
    """Every entry point of ``group`` loaded, by name. Each must be an ``expected`` whose ``name``
    is its entry point's name; anything else raises :class:`ConfigError` naming the entry point."""
    found: dict[str, T] = {}
    for entry in entry_points(group=group):
        plugin = entry.load()
        if not isinstance(plugin, expected) or getattr(plugin, "name", None) != entry.name:
            raise ConfigError(f"entry point {entry.name!r} of {group} is not a {expected.__name__} named "
                              f"{entry.name!r}", code="invalid_plugin")
        found[entry.name] = plugin
    return found
