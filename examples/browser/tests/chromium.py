"""What the browser suites share: Debian's Chromium, its flags, the server's URL, test labels."""

from __future__ import annotations

import os

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and no background traffic: without these Chromium keeps trying to
# reach Google's hosts (component updates, sync, first-run pings).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
CONTEXT_HEADER = "X-Servercov-Context"
WAIT_SECONDS = 10


def base_url() -> str:
    """Return the server's URL (``servercov run`` sets ``SERVERCOV_URL``)."""
    url = os.environ.get("SERVERCOV_URL")
    if not url:
        raise RuntimeError("SERVERCOV_URL is not set: run the suite under "
                           "`servercov run -- ...` (or set it to a running server's URL)")
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: run .ci/install-browser-deps "
                           "(Debian's chromium and chromium-driver)")
    return url.rstrip("/")


def context_headers(test_id: str) -> dict[str, str]:
    """Return the header that labels a test's requests when ``contexts = test`` is on."""
    if os.environ.get("SERVERCOV_CONTEXTS") == "test":
        return {CONTEXT_HEADER: test_id}
    return {}
