"""A normal install carries the extension's auto-enable file, the migrations and the outer
packages under the deepspace_lab namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("deepspace_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    config = next(n for n in names if n.endswith("etc/jupyter/jupyter_server_config.d/deepspace_lab.json"))
    enabled = json.loads(zipfile.ZipFile(wheel).read(config))["ServerApp"]["jpserver_extensions"]
    assert enabled == {"deepspace_lab.server_extension": True}
    for expected in ("deepspace_lab/server_extension/app.py", "deepspace_lab/widgets/__init__.py",
                     "deepspace_lab/dashboards/__init__.py", "deepspace_lab/db/migrations/env.py",
                     "deepspace_lab/db/migrations/versions/0001_initial_schema.py", "deepspace_lab/py.typed"):
        assert expected in names, expected
    assert not any(n.startswith(("server_extension/", "widgets/", "dashboards/", "tests/")) for n in names)


def test_extension_point_names_the_app() -> None:
    from deepspace_lab.server_extension import _jupyter_server_extension_points
    from deepspace_lab.server_extension.app import DeepSpaceApp

    assert _jupyter_server_extension_points() == [{"module": "deepspace_lab.server_extension", "app": DeepSpaceApp}]
