"""Stand in for a person clicking around the bookshelf: person.py [URL].

A headless Chromium (Playwright for Python) visits the pages as someone doing
manual QA would, against a server started with ``servercov serve``; URL
defaults to ``SERVERCOV_URL``.  It clicks, types, submits a bad and a good
book and looks at the statistics, waiting on what the page shows, then quits.
"""

from __future__ import annotations

import os
import sys

from playwright.sync_api import expect, sync_playwright
from tests.chromium import CHROMIUM, FLAGS, WAIT_SECONDS


def click_around(url: str) -> None:
    """Visit every page of the bookshelf at ``url`` the way a person would."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(base_url=url.rstrip("/"))
            page.set_default_timeout(WAIT_SECONDS * 1000)
            page.goto("/")
            page.get_by_role("link", name="Solaris").click()
            expect(page.locator("#author")).to_contain_text("Lem")
            page.get_by_role("link", name="Add a book").click()
            page.get_by_role("button", name="Add").click()  # an empty form first
            expect(page.locator("#title-error")).to_be_visible()
            page.get_by_label("Title").fill("Kindred")
            page.get_by_label("Author").fill("Octavia E. Butler")
            page.get_by_label("Year").fill("1979")
            page.get_by_role("button", name="Add").click()
            expect(page.locator(".flash")).to_contain_text("Kindred")
            page.get_by_role("link", name="Statistics").click()
            expect(page.locator("#stats")).to_have_attribute("data-state", "ready")
            page.locator("#decade").select_option("1970")
            expect(page.locator("#decade-books")).to_have_attribute("data-loaded", "1970")
        finally:
            browser.close()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVERCOV_URL", "")
    if not target:
        sys.exit("person.py URL (or set SERVERCOV_URL)")
    click_around(target)
    print(f"person.py: clicked through {target}")
