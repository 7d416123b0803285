"""The skip guard (skip_guard.py) against real pytest runs of small test files.

Each case runs pytest in a subprocess on a throwaway directory with only the guard
loaded, so what is checked is what a developer's run would report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's configuration
    (tmp_path / "test_case.py").write_text(source)
    # only the guard: no installed plugins (xdist, hypothesis, ...), no cache directory
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "stx_pipeline_tests.skip_guard",
         "-p", "no:cacheprovider", "-rs", "test_case.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    "source",
    [
        # a module skipped at import because a sample is not on this machine (as test_rows.py was)
        "import pytest\npytest.skip('Hiro samples not found in /elsewhere', "
        "allow_module_level=True)\ndef test_x():\n    pass\n",
        # a test skipped by a mark on a missing file
        "import pytest\n@pytest.mark.skipif(True, reason='sample not available')\n"
        "def test_x():\n    pass\n",
        # a test that skips itself from its body
        "import pytest\ndef test_x():\n    pytest.skip('sample not available')\n",
        # a module that "may be absent"
        "import pytest\nnothere = pytest.importorskip('stx_pipeline_no_such_module')\n"
        "def test_x():\n    pass\n",
    ],
    ids=["module-skip", "skipif-mark", "skip-in-body", "importorskip"],
)
def test_a_skip_for_something_missing_fails_the_run(tmp_path: Path, source: str) -> None:
    proc = _pytest(tmp_path, source)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "allows no skip except the browser" in out, out
    assert " skipped" not in out.splitlines()[-1], out


def test_the_browser_skip_and_xfail_still_pass(tmp_path: Path) -> None:
    proc = _pytest(
        tmp_path,
        "import pytest\n"
        "def test_browser():\n"
        "    pytest.skip('/usr/bin/chromium not installed (run `make browser`)')\n"
        "@pytest.mark.xfail(reason='known', strict=True)\n"
        "def test_known():\n    assert False\n"
        "def test_ok():\n    pass\n",
    )
    summary = proc.stdout.splitlines()[-1]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in summary and "1 skipped" in summary and "1 xfailed" in summary, summary
