"""A user module subclassing ServerTestCase passes ``mypy --strict`` (py.typed, typed names)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nose2_servercov"

USER_MODULE = '''
from nose2_servercov import ServerTestCase


class UserViews(ServerTestCase):
    prefix = "0.0"

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": "some-token"}

    def test_get_user(self) -> None:
        response = self.get("users/some-uid/", params={"full": "1"})
        self.assertEqual(response.status_code, 200)
        self.assertIsInstance(response.json(), dict)
'''


@pytest.mark.timeout(300)
def test_mypy_strict_accepts_a_user_class_subclassing_server_test_case(tmp_path):
    # The package as installed: on the search path like site-packages (mypy honours
    # it only with py.typed, PEP 561), not as source given to mypy.
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "nose2_servercov",
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert (site / "nose2_servercov" / "py.typed").exists()
    (tmp_path / "test_user.py").write_text(USER_MODULE)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "test_user.py"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found in 1 source file" in run.stdout
