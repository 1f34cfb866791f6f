"""Opt-in notebook context for a prompt: the current cell, its last error, chosen variables."""

from __future__ import annotations

import sys
from typing import Any

MAX_VALUE_CHARS = 2000


def notebook_context(shell: Any, *, include_cell: bool, include_error: bool, variables: list[str]) -> str:
    """Text to put before the question; empty when nothing was chosen (or no kernel)."""
    if shell is None:
        return ""
    parts = []
    namespace = getattr(shell, "user_ns", {})
    if include_cell:
        inputs = namespace.get("In") or []
        cell = next((c for c in reversed(inputs) if c and not c.lstrip().startswith(("%%deepspace", "%deepspace"))),
                    "")
        if cell:
            parts.append(f"Current cell:\n```python\n{cell}\n```")
    if include_error and getattr(sys, "last_value", None) is not None:
        parts.append(f"Its last error: {type(sys.last_value).__name__}: {sys.last_value}")
    for name in variables:
        if name in namespace:
            text = repr(namespace[name])
            if len(text) > MAX_VALUE_CHARS:
                text = text[:MAX_VALUE_CHARS] + " …"
            parts.append(f"Variable `{name}` ({type(namespace[name]).__name__}):\n```\n{text}\n```")
    return ("Notebook context:\n\n" + "\n\n".join(parts)) if parts else ""


def current_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()
