"""The small template syntax of step fields: ``{{ inputs.topic }}``, ``{{ steps.plan.outputs.text }}``.

A reference is a dotted path into the run's scope: ``inputs.<name>`` (the run's inputs) or
``steps.<id>.outputs.<key>[.<key>…]`` (an earlier step's outputs; a list index is a number, as
in ``steps.s.outputs.items.0``). A string that is one reference and nothing else takes the
value as it is (a number stays a number); references inside longer text are written in (a
non-string as JSON). Nothing else is evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")


class TemplateError(ValueError):
    """A reference that cannot be resolved (unknown input, step or output key)."""


def references(value: Any) -> Iterator[str]:
    """Every reference in a value (strings inside lists and mappings too)."""
    if isinstance(value, str):
        for match in REF.finditer(value):
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def lookup(scope: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``scope``; :class:`TemplateError` when it is absent."""
    current: Any = scope
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise TemplateError(f"`{path}` is not there (no `{part}`)")
    return current


def render(value: Any, scope: dict[str, Any]) -> Any:
    """``value`` with every reference replaced from ``scope`` (lists and mappings recursively)."""
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    if not isinstance(value, str):
        return value
    whole = REF.fullmatch(value.strip())
    if whole is not None:
        return lookup(scope, whole.group(1))

    def one(match: re.Match[str]) -> str:
        found = lookup(scope, match.group(1))
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return REF.sub(one, value)
