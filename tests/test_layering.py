"""The import rules of DESIGN §2 / §12.10, kept true by reading every module's imports."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "deepspace_lab"
OUTER = {"server_extension": "deepspace_lab.server_extension", "widgets": "deepspace_lab.widgets",
         "dashboards": "deepspace_lab.dashboards"}

#: Level of each core package or module (DESIGN §12.10). Composition roots sit on top.
LEVELS = {
    "errors": 0, "config": 0, "db": 0, "audit": 0, "storage": 0, "tracing": 0, "logs": 0, "cache": 0,
    "plugins": 0,
    "auth": 1, "billing": 1, "policy": 1, "upstream": 1, "conversations": 1, "files": 1, "simulator": 1,
    "catalog": 1, "idempotency": 1, "rag": 1, "mcp": 1, "skills": 1, "webhooks": 1,
    "pipeline": 2, "workflows": 2, "jobs": 2, "observe": 2,
    "client": 0,
    "schema": 3, "runtime": 3, "bootstrap": 3, "doctor": 3, "cli": 4,
}
FORBIDDEN_IN_CORE = ("tornado.web", "ipywidgets", "panel", "jupyter_server", "deepspace_lab.server_extension",
                     "deepspace_lab.widgets", "deepspace_lab.dashboards")


def imports_of(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return found


def outer_package(folder: str, path: Path) -> str:
    """The dotted package a module of an outer folder is in (its subpackage, if any)."""
    return ".".join((OUTER[folder], *path.parent.relative_to(ROOT / folder).parts))


def core_modules() -> list[tuple[Path, str, str]]:
    out = []
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE)
        if rel.parts[0] == "db" and "migrations" in rel.parts:
            continue
        unit = rel.parts[0].removesuffix(".py")
        package = "deepspace_lab." + ".".join(rel.parts[:-1]) if len(rel.parts) > 1 else "deepspace_lab"
        out.append((path, unit, package.rstrip(".")))
    return out


def test_every_core_unit_has_a_level() -> None:
    units = {unit for _, unit, _ in core_modules()} - {"__init__"}
    assert units <= LEVELS.keys(), units - LEVELS.keys()


def test_core_imports_only_downwards() -> None:
    bad = []
    for path, unit, package in core_modules():
        if unit == "__init__" or unit == "cli":
            continue
        for name in imports_of(path, package):
            if not name.startswith("deepspace_lab."):
                continue
            target = name.split(".")[1]
            if target in LEVELS and target != unit and LEVELS[target] > LEVELS[unit]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_core_imports_no_http_handlers_widgets_or_panel() -> None:
    bad = []
    for path, unit, package in core_modules():
        if unit == "cli":
            continue  # the composition root imports the outer packages lazily
        for name in imports_of(path, package):
            if name.startswith(FORBIDDEN_IN_CORE):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_outer_folders_never_import_each_other() -> None:
    bad = []
    for folder in OUTER:
        for path in (ROOT / folder).rglob("*.py"):
            for name in imports_of(path, outer_package(folder, path)):
                for other_folder, other in OUTER.items():
                    if other_folder != folder and name.startswith(other):
                        bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_widgets_and_dashboards_reach_only_the_client() -> None:
    bad = []
    for folder in ("widgets", "dashboards"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in imports_of(path, outer_package(folder, path)):
                if name.startswith("deepspace_lab.") and not name.startswith(("deepspace_lab.client", OUTER[folder])):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_pyproject_lists_every_package_on_disk() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {"deepspace_lab." + ".".join(p.parent.relative_to(CORE).parts) if p.parent != CORE else "deepspace_lab"
               for p in CORE.rglob("__init__.py")}
    on_disk |= {".".join((dotted, *p.parent.relative_to(ROOT / folder).parts))
                for folder, dotted in OUTER.items() for p in (ROOT / folder).rglob("__init__.py")}
    assert listed == on_disk
    assert config["package-dir"] == {"deepspace_lab": "deepspace_lab", **{v: k for k, v in OUTER.items()}}
