"""Make docs/contexts.png: the html report's context view of a real measured run.

Run from the repository root (on demand, never part of the test suite):

    .venv/bin/python docs/make_contexts_png.py

It copies the functional tests' Flask app and the two interleaving pytest
tests into a temporary folder, runs ``pytest --servercov -n 2`` there with
``contexts = test``, and photographs the app's page of the html report with
headless Chromium, the contexts of the request-handling lines expanded (the
report expands them on click; a copy of the page clicks them on load).
Debian's ``chromium`` is installed with apt-get when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "functional" / "scenarios"
OUTPUT = REPO / "docs" / "contexts.png"
RCFILE = """\
[run]
branch = True
parallel = True
source = webapp

[servercov]
command = {python} serve.py {port}
ready_path = /health/
shutdown_path = /servercov/shutdown/
contexts = test
reports = term, html
"""
# Expand the contexts of the lines that handle requests; drop the lines before the views.
EXPAND = """
<script>
window.addEventListener("load", () => {
  for (const box of document.querySelectorAll("input[id^=ctxs]")) {
    const line = Number(box.id.slice(4));
    if (line >= 20 && line <= 44) box.click();
  }
  // Start the picture at the first view: the imports above it are not shown
  // (a scrolled headless screenshot keeps blank space above the sticky header).
  for (let line = 1; line < 15; line++) {
    const anchor = document.getElementById("t" + line);
    if (anchor) anchor.closest("p").remove();
  }
});
</script>
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def chromium() -> str:
    """Return the path of Debian's chromium, installing it when missing."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run("apt-get update && apt-get install -y chromium", shell=True, check=True)
        found = shutil.which("chromium")
    if found is None:
        sys.exit("chromium is still missing after apt-get install")
    return found


def measured_report(folder: Path) -> Path:
    """Run the interleaving tests under pytest --servercov -n 2; return the app's html page."""
    project = folder / "project"
    shutil.copytree(SCENARIOS / "basic", project)
    for name in ("interleave.py", "test_interleave_pytest.py"):
        shutil.copy(SCENARIOS / "pytest" / name, project)
    (project / ".apirc").write_text(RCFILE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COVERAGE_", "SERVERCOV_")) and k != "PYTHONPATH"}
    env["MEET_DIR"] = str(project)
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--servercov",
                    "-n", "2", "test_interleave_pytest.py"], cwd=project, env=env, check=True,
                   timeout=300)
    [page] = (project / "htmlcov").glob("*__init___py.html")
    return page


def main() -> None:
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="servercov-png-") as scratch:
        folder = Path(scratch)
        page = measured_report(folder)
        shot = page.with_name("contexts_expanded.html")
        shot.write_text(page.read_text().replace("</body>", EXPAND + "</body>"))
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'profile'}",
                        "--window-size=1100,900", "--hide-scrollbars",
                        "--virtual-time-budget=5000", f"--screenshot={OUTPUT}",
                        shot.as_uri()], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
