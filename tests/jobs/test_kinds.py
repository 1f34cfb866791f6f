"""Job kinds plug in through the entry-point group; the built-ins are registered there too."""

from __future__ import annotations

import tomllib
from pathlib import Path

from deepspace_lab.jobs import ENTRY_POINT_GROUP, JobKind, job_kinds

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_kinds_register_through_the_entry_point_group() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert set(declared) == {"noop", "sleep", "export", "statement", "workflow_step",
                             "webhook_delivery"} <= set(job_kinds())
    for name, kind in job_kinds().items():
        assert isinstance(kind, JobKind) and kind.name == name and kind.description


def test_the_readme_documents_the_extension_point() -> None:
    assert ENTRY_POINT_GROUP in (ROOT / "README.md").read_text()
