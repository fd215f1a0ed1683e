"""The reporting layer's import graph: domain reads (``<app>/reports.py``, ``<app>/selectors.py``, rollups) and the
SQL helpers below them (``cgtclinic.reporting``) import nothing of the HTTP frame (DRF, the API packages), directly or
through any project module they import, so a report can be computed by a task, a command or a test.

Read from the source files (ast), not from ``sys.modules``: an import inside a function counts too."""

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = ("trials", "ethics", "subsidies")
DOMAIN_READS = [
    *(f"{app}.{module}" for app in APPS for module in ("reports", "selectors", "rollups")),
    "cgtclinic.rollups",
    *(f"cgtclinic.reporting.{path.stem}" for path in (ROOT / "cgtclinic" / "reporting").glob("*.py")),
]
FRAMEWORK = ("rest_framework", "drf_spectacular", "cgtclinic.api", *(f"{app}.api" for app in APPS))
PROJECT_PACKAGES = ("cgtclinic", *APPS)


def source_of(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(module: str) -> set[str]:
    """The modules one project module imports (``from a import b`` counts as ``a.b`` where that is a module)."""
    path = source_of(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if source_of(f"{base}.{alias.name}"))
    return found


def framework_paths(start: str) -> list[list[str]]:
    """Every chain of imports from ``start`` to the HTTP frame (each project module visited once)."""
    chains, seen, stack = [], {start}, [[start]]
    while stack:
        chain = stack.pop()
        for imported in sorted(imports_of(chain[-1])):
            if any(imported == name or imported.startswith(f"{name}.") for name in FRAMEWORK):
                chains.append([*chain, imported])
            elif imported.split(".")[0] in PROJECT_PACKAGES and imported not in seen and source_of(imported):
                seen.add(imported)
                stack.append([*chain, imported])
    return chains


def test_the_checked_modules_exist():
    present = [module for module in DOMAIN_READS if source_of(module)]
    assert {"trials.reports", "ethics.reports", "subsidies.reports", "cgtclinic.reporting.sql"} <= set(present)


def test_domain_reads_never_import_the_http_frame():
    offending = {module: framework_paths(module) for module in DOMAIN_READS if source_of(module)}
    assert {module: chains for module, chains in offending.items() if chains} == {}


def test_the_check_sees_an_import_of_the_frame():
    """The API packages do import DRF: the check would catch a domain module that imported them."""
    assert framework_paths("cgtclinic.api.reports.views")
