"""The README's quickstarts, pasted literally into an empty folder, work.

Three quickstarts are taken from README.md: Flask ("Quickstart for your own
API" and "Quickstart with pytest"), "FastAPI / ASGI" and "Django". The README
tells a newcomer to paste them into a shell, so each of their ``sh`` blocks is
typed, as it is, into one shell started in an empty folder: files must be
written by here-documents, as a paste would. A block in any other language is
refused (it would not paste), and a block without a language is the output the
README promises: its lines must appear, in order, in what the run printed
(pids, ports, timings, the folder's path and the coverage core, which depends
on the Python, aside). The only help the shell gets is a pip constraint that
resolves ``nose2-servercov`` to a wheel of this checkout (it is not on PyPI);
everything else comes from the package index as for any user, and the servers
are the real ones (Flask's dev server, uvicorn, Django's runserver).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO, assert_no_leftovers, python_env

FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.S | re.M)


@dataclass(frozen=True)
class Quickstart:
    """One README quickstart: its sections, the folder it makes, what its report names."""

    sections: tuple[str, ...]
    project: str
    files: tuple[str, ...]  # written by here-documents, in order
    runs: tuple[str, ...]  # the test commands; each starts the server once
    reported_files: tuple[str, ...]
    verdicts: tuple[str, ...]  # the test runners' own last words, as patterns of a line


QUICKSTARTS = {
    "flask": Quickstart(("## Quickstart for your own API", "## Quickstart with pytest"),
                        "myapi-project",
                        ("myapi/__init__.py", "server.py", ".apirc", "unittest.cfg",
                         "tests/test_users.py", "tests/test_users_pytest.py"),
                        ("nose2 --with-servercov", "pytest --servercov"),
                        ("myapi/__init__.py",), ("^OK$", "^=+ 2 passed")),
    "fastapi": Quickstart(("## FastAPI / ASGI",), "fastapi-project",
                          ("myapi/__init__.py", ".apirc", "unittest.cfg", "tests/test_items.py"),
                          ("nose2 --with-servercov",), ("myapi/__init__.py",), ("^OK$",)),
    "django": Quickstart(("## Django",), "django-project",
                         ("mysite/settings.py", "mysite/views.py", "mysite/urls.py", ".apirc",
                          "unittest.cfg", "tests/test_items.py"),
                         ("nose2 --with-servercov",),
                         ("mysite/settings.py", "mysite/urls.py", "mysite/views.py"), ("^OK$",)),
}


def readme_blocks(sections: tuple[str, ...]) -> list[tuple[str, str]]:
    """Return the (language, text) code blocks of the sections, in order, as rendered."""
    readme = (REPO / "README.md").read_text()
    blocks = []
    for title in sections:
        start = readme.index(title + "\n")
        end = readme.find("\n## ", start + len(title))
        for indent, language, body in FENCE.findall(readme[start:end]):
            text = textwrap.dedent("\n".join(line[len(indent):] if line.startswith(indent)
                                             else line for line in body.splitlines()))
            blocks.append((language, text))
    return blocks


def shell_script(blocks: list[tuple[str, str]]) -> str:
    """Return the shell blocks as one script, as pasted; refuse blocks that would not paste."""
    lines = ["set -e"]
    for language, text in blocks:
        assert language in ("sh", ""), (
            f"a {language} block does not paste into a shell; write the file with a "
            f"here-document in an sh block:\n{text}")
        if language == "sh":
            lines.append(text)
    return "\n".join(lines) + "\n"


def promised_output(blocks: list[tuple[str, str]]) -> list[str]:
    """Return the lines of the README's sample output (the blocks without a language)."""
    return [line.rstrip() for language, text in blocks if language == ""
            for line in text.splitlines() if line.strip()]


def comparable(line: str, project: Path) -> str:
    """Return the line without what differs from run to run: pids, ports, timings, the path."""
    line = line.rstrip().replace(str(project), "/home/you/" + project.name)
    line = re.sub(r"\bpid \d+", "pid N", line)
    line = re.sub(r", core \w+( \([^)]*\))?(?=, rcfile |$)", ", core C", line)  # the Python's
    line = re.sub(r"(https?://[\w.\[\]:-]+?):\d+", r"\1:PORT", line)
    return re.sub(r"\b\d+(\.\d+)? ?s\b", "T s", line)


def missing_lines(promised: list[str], printed: str, project: Path) -> list[str]:
    """Return the promised lines not found, in order, among the printed ones."""
    printed_lines = [comparable(line, project) for line in printed.splitlines()]
    missing, position = [], 0
    for line in promised:
        wanted = comparable(line, project)
        if wanted in printed_lines[position:]:
            position = printed_lines.index(wanted, position) + 1
        else:
            missing.append(line)
    return missing


@pytest.mark.parametrize("name", QUICKSTARTS)
def test_the_blocks_paste_into_a_shell(name):
    quickstart = QUICKSTARTS[name]
    blocks = readme_blocks(quickstart.sections)
    script = shell_script(blocks)
    assert script.startswith(f"set -e\nmkdir {quickstart.project} && cd {quickstart.project}\n")
    assert "python3 -m venv .venv" in script and ".apirc <<'EOF'\n[run]\n" in script
    assert tuple(re.findall(r"^cat >>? (\S+) <<'EOF'$", script, re.M)) == quickstart.files
    commands = [line for line in script.splitlines() if line in quickstart.runs]
    assert commands == list(quickstart.runs)
    assert promised_output(blocks), "the section shows what the user sees"


def test_a_file_pasted_without_its_here_document_is_refused():
    with pytest.raises(AssertionError, match="does not paste into a shell"):
        shell_script([("sh", "mkdir myapi"), ("python", "from flask import Flask")])


def test_promised_lines_must_be_printed_in_order(tmp_path):
    printed = f"servercov: server started: pid 12, http://127.0.0.1:4000, ready in 0.5 s, " \
              f"core sysmon\nx\n" \
              f"servercov: html report: {tmp_path}/cover/index.html\n"
    promised = ["servercov: server started: pid 5806, http://127.0.0.1:49811, ready in 0.43 s, "
                "core ctrace (sys.monitoring needs Python 3.12+)",
                f"servercov: html report: /home/you/{tmp_path.name}/cover/index.html"]
    assert missing_lines(promised, printed, tmp_path) == []
    assert missing_lines(promised[::-1], printed, tmp_path) == [promised[0]]
    assert missing_lines(["TOTAL   14   1   88%"], "TOTAL   14   2   86%", tmp_path) != []


@pytest.fixture(scope="module")
def constraints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a pip constraint file that resolves nose2-servercov to a wheel of this checkout."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder),
                    str(REPO)], check=True, timeout=300, capture_output=True)
    [wheel] = folder.glob("nose2_servercov-*.whl")
    constraint_file = folder / "constraints.txt"
    constraint_file.write_text(f"nose2-servercov @ {wheel.as_uri()}\n")
    return constraint_file


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", QUICKSTARTS)
def test_the_readme_quickstart_works_pasted_into_an_empty_folder(name, tmp_path, constraints):
    quickstart = QUICKSTARTS[name]
    blocks = readme_blocks(quickstart.sections)
    folder = tmp_path / "empty"
    folder.mkdir()
    env = python_env(PIP_CONSTRAINT=str(constraints), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    # One stream, as a terminal shows it: servercov's lines and the report in their order.
    run = subprocess.run(["bash", "-c", shell_script(blocks)], cwd=folder, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=540)
    out = run.stdout
    assert run.returncode == 0, out
    project = folder / quickstart.project
    assert (project / "cover" / "index.html").exists(), out
    assert (project / ".coverage").exists(), out
    runs = len(quickstart.runs)
    assert out.count("servercov: server started") == runs, out
    for reported in quickstart.reported_files:  # in each run's term report
        assert len(re.findall(rf"^{re.escape(reported)} +\d", out, re.M)) == runs, (reported, out)
    for verdict in quickstart.verdicts:
        assert re.search(verdict, out, re.M), (verdict, out)
    assert missing_lines(promised_output(blocks), out, project) == [], out
    assert_no_leftovers(folder)
