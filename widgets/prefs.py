"""The workbench's own preferences, kept beside the user (not on the Gateway): the system
prompt of each project. File: ``DEEPSPACE_WORKBENCH_PREFS`` or
``~/.config/deepspace-lab/workbench.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def prefs_path() -> Path:
    configured = os.environ.get("DEEPSPACE_WORKBENCH_PREFS")
    return Path(configured) if configured else Path.home() / ".config" / "deepspace-lab" / "workbench.json"


class Prefs:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or prefs_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def system_prompt(self, project_id: str | None) -> str:
        prompts = self._read().get("system_prompts") or {}
        return str(prompts.get(project_id or "", "")) if isinstance(prompts, dict) else ""

    def set_system_prompt(self, project_id: str | None, text: str) -> None:
        data = self._read()
        prompts = data.setdefault("system_prompts", {})
        if text:
            prompts[project_id or ""] = text
        else:
            prompts.pop(project_id or "", None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
        tmp.replace(self.path)
