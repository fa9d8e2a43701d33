"""The import graph: the worker and scheduler load no Flask, and arrows point down."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded_with(module: str, dependency: str) -> bool:
    """Whether importing `module` in a fresh interpreter (so nothing an earlier test
    imported counts) loads `dependency`."""
    code = f"import sys, {module}; print({dependency!r} in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("module", ["tasks.send", "tasks.scheduler", "db.pool", "db.queries"])
def test_worker_and_scheduler_modules_import_no_flask(module):
    # When the module is imported, Flask is not loaded with it
    assert not _loaded_with(module, "flask")


@pytest.mark.parametrize("module", ["tasks.send", "tasks.scheduler", "operations.metrics", "app"])
def test_importing_a_process_module_builds_no_metric(module):
    # When a process's module is imported, prometheus_client is not even loaded: each
    # process builds its metrics on first use, after it has chosen where they are
    # stored (PROMETHEUS_MULTIPROC_DIR)
    assert not _loaded_with(module, "prometheus_client")


def test_import_contracts_in_pyproject_are_kept():
    # Given the layers and forbidden-import contracts in pyproject.toml
    lint_imports = Path(sys.executable).with_name("lint-imports")
    # When import-linter checks the import graph
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    # Then no contract is broken
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _imported_top_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


# The contracts' packages, as pyproject.toml lists them.
LAYERED_PACKAGES = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)


def test_no_package_imports_the_entry_points():
    # Given every module of the layered packages (import-linter takes packages only)
    modules = [path for name in LAYERED_PACKAGES for path in (ROOT / name).rglob("*.py")]
    # Then none imports app.py or wsgi.py, which sit above them all
    offenders = [str(path) for path in modules if _imported_top_names(path) & {"app", "wsgi"}]
    assert offenders == []


OURS = set(LAYERED_PACKAGES) | {
    "app",
    "wsgi",
    "config",
    "env_values",
    "errors",
    "log_setup",
    "exposure",
}


@pytest.mark.parametrize(
    ("module", "below_it"),
    [
        ("config.py", {"env_values"}),  # the settings read by env_values' parsers
        ("env_values.py", set()),
        ("errors.py", set()),
        ("log_setup.py", set()),
    ],
)
def test_bottom_modules_import_nothing_of_ours_but_what_is_below_them(module, below_it):
    # Given one of the single-file modules every layer may use
    # Then it imports none of the project's modules, but the one below it
    assert _imported_top_names(ROOT / module) & OURS == below_it
