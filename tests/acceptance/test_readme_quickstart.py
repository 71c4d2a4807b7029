"""The README's quickstarts, pasted literally into an empty folder, work.

The code blocks of "Quickstart for your own API" and "Quickstart with pytest"
are taken from README.md in order: ``sh`` blocks are typed into one shell,
``python`` and ``ini`` blocks are written to the file their first line names
(``# tests/test_users.py``). The only help the shell gets is a pip constraint
that resolves ``nose2-servercov`` to a wheel of this checkout (it is not on
PyPI); everything else comes from the package index as for any user.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from tests.support import REPO, assert_no_leftovers, python_env

SECTIONS = ("## Quickstart for your own API", "## Quickstart with pytest")
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.S | re.M)


def quickstart_blocks() -> list[tuple[str, str]]:
    """Return the (language, text) code blocks of the quickstart sections, in order."""
    readme = (REPO / "README.md").read_text()
    blocks = []
    for title in SECTIONS:
        start = readme.index(title)
        end = readme.find("\n## ", start + len(title))
        for indent, language, body in FENCE.findall(readme[start:end]):
            text = textwrap.dedent("\n".join(line[len(indent):] if line.startswith(indent)
                                             else line for line in body.splitlines()))
            blocks.append((language, text))
    return blocks


def shell_script(blocks: list[tuple[str, str]]) -> str:
    """Turn the blocks into one script: commands as typed, files written as pasted."""
    lines = ["set -e"]
    for language, text in blocks:
        if language == "sh":
            lines.append(text)
        elif language in ("python", "ini"):
            first = text.splitlines()[0]
            assert first.startswith("# "), f"a file block must name its file: {first!r}"
            path = first[2:].split()[0]
            body = text.rstrip("\n")
            lines.append(f"cat > {shlex.quote(path)} <<'README_BLOCK'\n{body}\nREADME_BLOCK")
        # Blocks without a language are sample output.
    return "\n".join(lines) + "\n"


def test_the_blocks_are_found():
    blocks = quickstart_blocks()
    files = [text.splitlines()[0] for language, text in blocks if language in ("python", "ini")]
    assert files == ["# myapi/__init__.py", "# server.py", "# .apirc", "# unittest.cfg",
                     "# tests/test_users.py", "# tests/test_users_pytest.py"]
    commands = "\n".join(text for language, text in blocks if language == "sh")
    assert "python3 -m venv .venv" in commands
    assert "nose2 --with-servercov" in commands and "pytest --servercov" in commands


@pytest.mark.timeout(600)
def test_the_readme_quickstarts_work_pasted_into_an_empty_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(REPO)], check=True, timeout=300, capture_output=True)
    [wheel] = wheels.glob("nose2_servercov-*.whl")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"nose2-servercov @ {wheel.as_uri()}\n")
    folder = tmp_path / "empty"
    folder.mkdir()
    env = python_env(PIP_CONSTRAINT=str(constraints), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    script = shell_script(quickstart_blocks())
    # Each run's output is marked, so the test can tell nose2's from pytest's.
    script = script.replace("nose2 --with-servercov\n", "echo '== nose2'\n"
                            "nose2 --with-servercov\n", 1)
    script = script.replace("pytest --servercov\n", "echo '== pytest'\npytest --servercov\n", 1)
    run = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=540)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    project = folder / "myapi-project"
    assert (project / "cover" / "index.html").exists(), out
    assert run.stdout.count("myapi/__init__.py") == 2, out  # both runs' term reports
    assert out.count("servercov: server started") == 2, out
    assert "1 passed" in out or "2 passed" in out, out
    assert os.path.exists(project / ".coverage")
    assert_no_leftovers(folder)
