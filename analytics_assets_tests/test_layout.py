"""The package's imports run one way: errors and the window, then the settings, the API, the
warehouse, the Dagster definitions, the entry points. Walked in the source, lazy imports included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "analytics_assets"
# Each module's layer; a module may import its own layer's modules and those of the layers before.
LAYERS = ["errors", "window", "processes", "settings", "api", "warehouse", "builders", "components", "definitions", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports, wherever in the file (not under `if TYPE_CHECKING`)."""
    tree = ast.parse(path.read_text())
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found: set[str] = set()
    checking = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
                and getattr(stmt.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("analytics_assets"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if _exists(candidate) else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("analytics_assets"))
    return {name for name in found if _exists(name)} - {module_name(path)}


def _exists(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")
            if "demo_api" not in path.parts}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_no_import_circle():
    edges = graph()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target] if target in trail else [module, target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_imports_run_one_way_through_the_layers():
    wrong = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
             if layer(module) >= 0 and layer(target) > layer(module)]
    assert wrong == []


def test_the_walk_sees_lazy_imports():
    """A function-level import counts (the circle it would close is only delayed, not gone)."""
    settings = PACKAGE / "settings.py"
    assert "analytics_assets.errors" in imports_of(settings)
    assert "analytics_assets.api.client" in imports_of(PACKAGE / "api" / "paging.py")


def test_validating_settings_imports_neither_dlt_nor_sqlglot():
    code = ("import sys; from analytics_assets.settings import Settings; "
            "Settings.from_env({'ANALYTICS_DESTINATION': 'postgres'}); "
            "print(sorted(name for name in ('dlt', 'sqlglot', 'dagster') if name in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_destination_names_and_the_destinations_table_agree():
    from analytics_assets.settings import DESTINATION_NAMES
    from analytics_assets.warehouse.destinations import DESTINATIONS

    assert tuple(DESTINATIONS) == DESTINATION_NAMES
