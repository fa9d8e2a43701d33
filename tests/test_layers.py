"""The import graph: the worker and scheduler load no Flask, and arrows point down."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["tasks.send", "tasks.scheduler", "db.pool", "db.queries"])
def test_worker_and_scheduler_modules_import_no_flask(module):
    # Given a fresh interpreter, so nothing an earlier test imported counts
    code = f"import sys, {module}; print('flask' in sys.modules)"
    # When the module is imported
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    # Then Flask was not loaded with it
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
