"""Make docs/browser-report.png: the bookshelf's html report after its Playwright suite.

    python docs/make_browser_report_picture.py

Copies examples/browser to a temporary folder, runs its Playwright suite under
``servercov run`` (``contexts = test``), opens the report's page for the app in
headless Chromium (Debian's, as the suites use), shows which browser tests
reached the form's lines, and saves a screenshot beside this script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "browser"
PICTURE = Path(__file__).resolve().parent / "browser-report.png"
# Lines whose "N ctx" label is opened in the picture, found by their text.
SHOW_CONTEXTS = ['errors["year"] = "The year must be a whole', "book, errors = validate(",
                 "books.append(book)"]
FIRST_LINE = "def validate"


def main() -> None:
    sys.path.insert(0, str(EXAMPLE))
    from tests.chromium import CHROMIUM, FLAGS

    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "browser"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(
            "__pycache__", ".coverage*", "cover", "requests.jsonl", "node_modules"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVERCOV_", "COVERAGE_"))}
        subprocess.run([sys.executable, "-m", "nose2_servercov", "run", "--", sys.executable,
                        "-m", "unittest", "tests/test_playwright.py"], cwd=project, env=env,
                       check=True, timeout=300)
        source = (project / "shelf" / "__init__.py").read_text().splitlines()

        def line_of(text: str) -> int:
            return next(n for n, line in enumerate(source, 1) if text in line)

        (page_file,) = (project / "cover").glob("*___init___py.html")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1180, "height": 1610})
            page.goto(page_file.as_uri())
            for text in SHOW_CONTEXTS:
                row = page.locator(f"#source p:has(#t{line_of(text)})")
                row.locator("label.ctx").click()
                row.locator(".ctxs.expanded").wait_for()
            # The form's code (validate, then the view) just under the sticky header.
            page.locator(f"#t{line_of(FIRST_LINE)}").evaluate(
                "a => window.scrollTo(0, a.getBoundingClientRect().top + window.scrollY"
                " - document.querySelector('header').offsetHeight - 8)")
            page.screenshot(path=str(PICTURE))
            browser.close()
    print(f"wrote {PICTURE}")


if __name__ == "__main__":
    main()
