"""examples/browser: three browser suites under ``servercov run``, and a person at ``serve``.

Each suite (Selenium, Playwright for Python, node --test with playwright-core)
drives Debian's Chromium through the bookshelf app while servercov measures it.
The app logs every request it receives; the ground truth is those exact
requests replayed in-process through Flask's test client under coverage
(``examples/browser/replay.py``), each under the context its
``X-Servercov-Context`` header names.  The measured data must equal it line for
line, arc for arc and context for context; no process (browser and driver
included) and no per-process data file may be left.

Chromium must be installed (``bash .ci/install-browser-deps``, which ``.ci/run``
runs): without it these tests fail and say so, they are never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from coverage import CoverageData

from tests.support import (
    REPO,
    assert_no_leftovers,
    end_process,
    python_env,
    run_servercov,
    running_serve,
    serve_state,
)

pytestmark = pytest.mark.timeout(180)

EXAMPLE = REPO / "examples" / "browser"
BIN = Path(sys.executable).parent
SUITES = {
    "selenium": [sys.executable, "-m", "unittest", "-v", "tests/test_selenium.py"],
    "playwright": [sys.executable, "-m", "unittest", "-v", "tests/test_playwright.py"],
    "javascript": ["node", "--test", "js/shelf.test.mjs"],
}
# The label each suite gives a test's requests, by test.
TEST_IDS = {
    "selenium": "tests.test_selenium.BookshelfInSelenium.test_{}",
    "playwright": "tests.test_playwright.BookshelfInPlaywright.test_{}",
    "javascript": "js/shelf.test.mjs::{}",
}
# Each suite's four tests: (Python method name without test_, JavaScript test name).
TESTS = {
    "bad year": ("form_rejects_a_bad_year", "form rejects a bad year"),
    "good book": ("form_adds_a_good_book", "form adds a good book"),
    "statistics": ("statistics_come_from_the_json_endpoint",
                   "statistics come from the JSON endpoint"),
    "detail": ("list_and_detail", "list and detail"),
}
# The programs a suite must start (the file names of their executables).
BROWSER_PROCESSES = {
    "selenium": {"chromium", "chromedriver"},
    "playwright": {"chromium", "node"},
    "javascript": {"chromium", "node"},
}
MARKER = "SHELF_BROWSER_TEST_RUN"


def label(suite: str, test: str) -> str:
    """Return the context label ``suite`` gives the requests of ``test`` (a TESTS key)."""
    python_name, js_name = TESTS[test]
    return TEST_IDS[suite].format(js_name if suite == "javascript" else python_name)


def missing_browser_deps() -> list[str]:
    """Return what .ci/install-browser-deps would install and is not there."""
    missing = [path for path in ("/usr/bin/chromium", "/usr/bin/chromedriver")
               if not os.access(path, os.X_OK)]
    if not (EXAMPLE / "js" / "node_modules" / "playwright-core" / "package.json").exists():
        missing.append("examples/browser/js/node_modules/playwright-core")
    return missing


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Copy examples/browser into ``tmp_path`` (the JS suite's node_modules linked)."""
    missing = missing_browser_deps()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `bash .ci/install-browser-deps` "
                    "(Debian's chromium and chromium-driver, npm ci of playwright-core)")
    target = tmp_path / "browser"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(
        "__pycache__", ".coverage*", "cover", "requests.jsonl", "node_modules", ".servercov"))
    (target / "js" / "node_modules").symlink_to(EXAMPLE / "js" / "node_modules")
    return target


def marked_processes(marker: str) -> dict[int, str]:
    """Return {pid: program file name} of live processes whose environment carries ``marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            found[int(entry)] = os.path.basename(os.readlink(f"/proc/{entry}/exe"))
        except OSError:
            continue
    return found


class ProcessWatch:
    """Record every process started with ``marker`` in its environment while a run lasts."""

    def __init__(self) -> None:
        self.marker = uuid.uuid4().hex
        self.seen: dict[int, str] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.is_set():
            self.seen.update(marked_processes(self.marker))
            self.done.wait(0.05)

    def __enter__(self) -> ProcessWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)

    def names(self) -> set[str]:
        return set(self.seen.values())

    def assert_none_left(self) -> None:
        left = marked_processes(self.marker)
        for pid in left:
            os.kill(pid, 9)
        assert left == {}, f"processes left behind: {left}"


def suite_env(watch: ProcessWatch) -> dict[str, str]:
    return {MARKER: watch.marker, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def request_log(project: Path) -> list[tuple[str, str]]:
    """Return (method, path?query) of every request the server logged."""
    entries = [json.loads(line) for line in (project / "requests.jsonl").read_text().splitlines()]
    return [(e["method"], e["path"] + (f"?{e['query']}" if e["query"] else "")) for e in entries]


def replay(project: Path) -> CoverageData:
    """Replay the server's request log in-process (replay.py) and return its data."""
    subprocess.run([sys.executable, "replay.py", "requests.jsonl", ".truth"], cwd=project,
                   env=python_env(), check=True, capture_output=True, timeout=60)
    return read_data(project / ".truth")


def read_data(path: Path) -> CoverageData:
    data = CoverageData(str(path))
    data.read()
    return data


def by_line(data: CoverageData, project: Path) -> dict[int, list[str]]:
    """Return {line: sorted contexts} of the app module."""
    contexts = data.contexts_by_lineno(str(project / "shelf" / "__init__.py"))
    return {line: sorted(names) for line, names in contexts.items()}


def assert_same_as_replay(project: Path, data: CoverageData) -> CoverageData:
    """Assert ``data`` holds exactly what the logged requests ran in-process."""
    truth = replay(project)
    app = str(project / "shelf" / "__init__.py")
    assert sorted(truth.measured_files()) == [app]
    assert sorted(data.measured_files()) == [app]  # no template, no other file
    missing = set(truth.lines(app) or ()) - set(data.lines(app) or ())
    extra = set(data.lines(app) or ()) - set(truth.lines(app) or ())
    assert (sorted(missing), sorted(extra)) == ([], [])
    assert sorted(data.arcs(app) or ()) == sorted(truth.arcs(app) or ())
    assert by_line(data, project) == by_line(truth, project)
    return truth


def line_of(project: Path, text: str) -> int:
    """Return the number of the app module's line that contains ``text``."""
    lines = (project / "shelf" / "__init__.py").read_text().splitlines()
    (number,) = [n for n, line in enumerate(lines, 1) if text in line]
    return number


def test_the_readme_gives_the_three_commands_the_tests_run():
    section = (REPO / "README.md").read_text().split(
        "## Browser tests (Selenium, Playwright, JavaScript)\n", 1)[1].split("\n## ", 1)[0]
    for suite in SUITES.values():
        command = " ".join(["python" if word == sys.executable else word for word in suite])
        assert f"servercov run -- {command}" in section
    assert "docs/browser-report.png" in section and (REPO / "docs" / "browser-report.png").exists()


@pytest.mark.parametrize("suite", list(SUITES))
def test_a_browser_suite_under_servercov_run_is_exact(project, suite):
    with ProcessWatch() as watch:
        run = run_servercov(project, "run", "--", *SUITES[suite], **suite_env(watch))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "servercov: server stopped by shutdown_path" in run.stderr
    # The browser and its driver did run, and none of them is left.
    assert BROWSER_PROCESSES[suite] <= watch.names(), watch.seen
    watch.assert_none_left()
    assert_no_leftovers(project)
    assert sorted(p.name for p in project.glob(".coverage.*")) == []
    assert (project / "cover" / "index.html").exists()

    # What the browser asked for: pages, the form twice, the script and its JSON.
    asked = request_log(project)
    for request in [("GET", "/"), ("GET", "/books/1/"), ("GET", "/books/new"),
                    ("GET", "/stats/"), ("GET", "/static/stats.js"), ("GET", "/api/stats"),
                    ("GET", "/api/books?decade=1950")]:
        assert request in asked
    assert asked.count(("POST", "/books/new")) == 2

    data = read_data(project / ".coverage")
    assert_same_as_replay(project, data)

    # contexts = test: each server line is recorded under the browser tests that reached it.
    contexts = by_line(data, project)
    named = {test: label(suite, test) for test in TESTS}
    expected = {
        line_of(project, 'errors["year"] = "The year must be a whole'): [named["bad year"]],
        line_of(project, "books.append(book)"): [named["good book"]],
        line_of(project, "titles = [book"): [named["statistics"]],
        line_of(project, 'return render_template("book.html"'): [named["detail"]],
        line_of(project, 'return "ok"'): [""],  # the ready probe, unlabelled
        line_of(project, "book, errors = validate(request.form)"): sorted(
            [named["bad year"], named["good book"]]),
    }
    assert {line: contexts[line] for line in expected} == expected
    # Every test's label reached the server; nothing else did.
    assert set().union(*map(set, contexts.values())) == {"", *named.values()}
    if suite == "playwright":  # one suite is enough to read the report in a browser
        # The html report shows them to a reader who clicks a line's "N ctx" label.
        shown = read_report(project, {}, list(expected))["contexts"]
        assert shown == {str(line): [name or "(empty)" for name in names]
                         for line, names in expected.items()}


def test_a_person_at_the_browser_under_serve_then_snapshot_and_the_report(project):
    watch = ProcessWatch()
    with running_serve(project, **suite_env(watch)) as serve:
        with watch:
            url = serve_state(project, serve)["url"]
            person = subprocess.run(
                [sys.executable, "person.py", url], cwd=project,
                env=python_env(**suite_env(watch)), capture_output=True, text=True,
                timeout=120)
            assert person.returncode == 0, person.stdout + person.stderr
            snapshot = run_servercov(project, "snapshot")
            assert snapshot.returncode == 0, snapshot.stderr
            assert serve.poll() is None  # the server is still serving
            assert_same_as_replay(project, read_data(project / ".coverage"))
            asked = request_log(project)
            assert ("POST", "/books/new") in asked and ("GET", "/api/books?decade=1970") in asked

            # The report, opened in the same headless Chromium a reader would use.
            report = read_report(project, suite_env(watch), [])
            cov = _analysis(project)
            assert report["files"] == ["shelf/__init__.py"]
            assert report["total"] == cov["total"]
            export = line_of(project, 'rows = ["title,author,year"]')
            assert report["missed"] == cov["missed"] and export in report["missed"]
            assert line_of(project, "books.append(book)") in report["run"]

            stop = run_servercov(project, "stop")
            assert stop.returncode == 0, stop.stderr
            assert end_process(serve) == 0
        assert "chromium" in watch.names()
        watch.assert_none_left()
        assert_same_as_replay(project, read_data(project / ".coverage"))
        assert sorted(p.name for p in project.glob(".coverage.*")) == []
    assert_no_leftovers(project)


def _analysis(project: Path) -> dict[str, object]:
    """Return the total percentage and the missed lines as coverage itself reports them."""
    out = subprocess.run(
        [sys.executable, "-m", "coverage", "json", "--rcfile=.apirc", "-o", "-", "-q"],
        cwd=project, env=python_env(), capture_output=True, text=True, check=True, timeout=60)
    report = json.loads(out.stdout)
    (info,) = report["files"].values()
    return {"total": report["totals"]["percent_covered_display"] + "%",
            "missed": info["missing_lines"]}


# Opens the html report in Chromium as a reader would: the index, then the file's
# page, where a click on a line's "N ctx" label shows the tests that reached it.
READ_REPORT = """
import json, re, sys
from pathlib import Path
from playwright.sync_api import sync_playwright
from tests.chromium import CHROMIUM, FLAGS
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    # Tall enough that the file's page never scrolls: a scroll makes coverage's
    # header sticky, the lines move under the pointer, and a click meant for a
    # "ctx" label lands beside it (3 in 80 reads did).
    page = browser.new_page(viewport={"width": 1280, "height": 6000})
    page.goto(Path(sys.argv[1]).as_uri())
    files = [t.strip() for t in page.locator("td.name a").all_text_contents()]
    total = page.locator("tr.total td").last.text_content().strip()
    page.locator("td.name a").first.click()
    # The "ctx" labels answer clicks only once the page's DOMContentLoaded handler
    # has run.
    page.wait_for_url(re.compile(r"_py\\.html$"), wait_until="load")
    def numbers(kind):
        return [int(t) for t in page.locator(f"#source p.{kind} .n a").all_text_contents()]
    contexts = {}
    for line in json.loads(sys.argv[2]):
        row = page.locator(f"#source p:has(#t{line})")
        if row.locator(f"#ctxs{line}").count():
            row.locator("label.ctx").click()
            row.locator(".ctxs.expanded").wait_for()
            contexts[line] = row.locator(".ctxs").inner_text().split("\\n")
        else:
            contexts[line] = [row.locator("label.ctx").inner_text()]
        contexts[line] = sorted(c.strip() for c in contexts[line] if c.strip())
    assert page.evaluate("window.scrollY") == 0, "the report's page scrolled: make it taller"
    print(json.dumps({"files": files, "total": total, "missed": numbers("mis"),
                      "run": numbers("run"), "contexts": contexts}))
    browser.close()
"""


def read_report(project: Path, env: dict[str, str], lines: list[int]) -> dict:
    """Return what the html report shows a reader in Chromium (READ_REPORT)."""
    seen = subprocess.run(
        [sys.executable, "-c", READ_REPORT, str(project / "cover" / "index.html"),
         json.dumps(lines)], cwd=project, env=python_env(**env), capture_output=True,
        text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr
    return json.loads(seen.stdout)
