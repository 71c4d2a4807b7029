"""One version, everywhere: the package, the metadata, ``servercov --version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import nose2_servercov
from nose2_servercov.cli import main


def test_servercov_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"servercov {nose2_servercov.__version__}\n"


def test_python_m_nose2_servercov_version():
    run = subprocess.run([sys.executable, "-m", "nose2_servercov", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, f"servercov {nose2_servercov.__version__}\n")


def test_the_installed_metadata_has_the_same_version():
    assert version("nose2-servercov") == nose2_servercov.__version__
