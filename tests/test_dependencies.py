"""Every third-party package the code imports is declared in pyproject.toml (not inherited)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "legacy_flask", "asgi_gateway", "admin_assistant")


def imported_modules(folder: Path) -> set[str]:
    """Top-level names of every module imported anywhere under `folder`."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"]
    if extra is not None:
        requirements = [*requirements, *project["optional-dependencies"][extra]]
    return {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in requirements
    }


def test_every_imported_package_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    ours = set(PACKAGES)
    missing = []
    for package in PACKAGES:
        for module in sorted(imported_modules(ROOT / package)):
            if module in ours or module in sys.stdlib_module_names or module == "__future__":
                continue
            names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not names & declared():
                missing.append(f"{package} imports {module} ({', '.join(sorted(names))})")
    assert missing == [], "declare these in pyproject.toml:\n" + "\n".join(missing)
