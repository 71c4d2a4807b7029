"""The bookshelf in Debian's Chromium, driven by Playwright for Python.

Run under servercov from examples/browser:
    servercov run -- python -m unittest -v tests/test_playwright.py
One browser for the suite; each test gets a fresh browser context whose every
request carries the test's id in X-Servercov-Context (with ``contexts = test``).
"""

from __future__ import annotations

import unittest

from playwright.sync_api import expect, sync_playwright

from tests.chromium import CHROMIUM, FLAGS, WAIT_SECONDS, base_url, context_headers


class BookshelfInPlaywright(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.url = base_url()
        cls.playwright = sync_playwright().start()
        try:
            # Playwright gives the browser a fresh temporary --user-data-dir itself.
            cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        except BaseException:
            cls.playwright.stop()
            raise
        expect.set_options(timeout=WAIT_SECONDS * 1000)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.browser.close()
        cls.playwright.stop()

    def setUp(self) -> None:
        self.context = self.browser.new_context(
            base_url=self.url, extra_http_headers=context_headers(self.id()))
        self.addCleanup(self.context.close)
        self.page = self.context.new_page()

    def test_list_and_detail(self) -> None:
        page = self.page
        page.goto("/")
        expect(page.locator("h1")).to_have_text("Books")
        page.get_by_role("link", name="Foundation").click()
        expect(page.locator("#author")).to_have_text("by Isaac Asimov, 1951")

    def test_form_rejects_a_bad_year(self) -> None:
        page = self.page
        page.goto("/books/")
        page.get_by_role("link", name="Add a book").click()
        page.get_by_label("Title").fill("Dune")
        page.get_by_label("Year").fill("soon")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#year-error")).to_have_text(
            "The year must be a whole number, like 1965.")
        expect(page.get_by_label("Title")).to_have_value("Dune")

    def test_form_adds_a_good_book(self) -> None:
        page = self.page
        page.goto("/books/new")
        page.get_by_label("Title").fill("Dune")
        page.get_by_label("Author").fill("Frank Herbert")
        page.get_by_label("Year").fill("1965")
        page.get_by_role("button", name="Add").click()
        expect(page.locator(".flash")).to_have_text("Added “Dune”.")
        expect(page.locator("#books")).to_contain_text("Dune (1965)")

    def test_statistics_come_from_the_json_endpoint(self) -> None:
        page = self.page
        page.goto("/books/")
        page.get_by_role("link", name="Statistics").click()
        expect(page.locator("#stats")).to_have_attribute("data-state", "ready")
        expect(page.locator("#stats")).to_contain_text("from 1951 to 1969")
        page.locator("#decade").select_option("1950")
        expect(page.locator("#decade-books")).to_have_attribute("data-loaded", "1950")
        expect(page.locator("#decade-books li").first).to_have_text("Foundation")


if __name__ == "__main__":
    unittest.main()
