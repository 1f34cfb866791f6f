"""The one loader of typed entry-point groups (job kinds, workflow step kinds)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from deepspace_lab import plugins
from deepspace_lab.config import ConfigError
from deepspace_lab.jobs.kinds import NOOP, JobKind


def group(*entries: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name=name, value=value, group="test.group") for name, value in entries]


def test_entries_load_by_name_when_typed_and_named_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda group: globals()["group"](
        ("noop", "deepspace_lab.jobs.kinds:NOOP"), ("sleep", "deepspace_lab.jobs.kinds:SLEEP")))
    found = plugins.load_plugins("test.group", JobKind)
    assert found["noop"] is NOOP and sorted(found) == ["noop", "sleep"]


@pytest.mark.parametrize("entry", [("noop", "deepspace_lab.jobs.kinds:no_params"),  # not a JobKind
                                   ("other", "deepspace_lab.jobs.kinds:NOOP")])  # named otherwise
def test_a_wrong_entry_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, entry: tuple[str, str]) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda group: globals()["group"](entry))
    with pytest.raises(ConfigError) as caught:
        plugins.load_plugins("test.group", JobKind)
    assert caught.value.code == "invalid_plugin" and repr(entry[0]) in caught.value.message
