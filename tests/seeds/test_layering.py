"""The project package never imports an app, and each app's demo loader is found in INSTALLED_APPS order."""

import ast

from django.conf import settings

import ethics.seeds
import subsidies.seeds
import trials.seeds
from cgtclinic.seeding import demo_loaders

APPS = {"trials", "ethics", "subsidies"}


def _imported_modules(path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            imported.append((node.lineno, node.args[0].value))
    return imported


def test_no_module_in_cgtclinic_imports_an_app():
    package = settings.BASE_DIR / "cgtclinic"
    files = sorted(package.rglob("*.py"))
    assert len(files) > 10

    offending = [
        f"{path.relative_to(settings.BASE_DIR)}:{line} imports {module}"
        for path in files
        for line, module in _imported_modules(path)
        if module.split(".")[0] in APPS
    ]

    assert offending == []


def test_app_demo_loaders_run_in_installed_apps_order():
    assert demo_loaders() == [trials.seeds.load_demo, ethics.seeds.load_demo, subsidies.seeds.load_demo]
