"""The bookshelf in Debian's Chromium, driven by Selenium through Debian's chromedriver.

Run under servercov from examples/browser:
    servercov run -- python -m unittest -v tests/test_selenium.py
No driver or browser is downloaded: both paths are given, so Selenium Manager
never runs.  One browser for the suite; each test starts with no cookies and
labels its requests through the DevTools protocol (``Network.setExtraHTTPHeaders``),
with ``contexts = test``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.chromium import CHROMEDRIVER, CHROMIUM, FLAGS, WAIT_SECONDS, base_url, context_headers

os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager must never phone home


class BookshelfInSelenium(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.url = base_url()
        cls.profile = tempfile.mkdtemp(prefix="shelf-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={cls.profile}"]:
            options.add_argument(flag)
        try:
            cls.driver = webdriver.Chrome(options=options,
                                          service=Service(executable_path=CHROMEDRIVER))
        except BaseException:
            shutil.rmtree(cls.profile, ignore_errors=True)
            raise
        cls.driver.execute_cdp_cmd("Network.enable", {})

    @classmethod
    def tearDownClass(cls) -> None:
        cls.driver.quit()
        shutil.rmtree(cls.profile, ignore_errors=True)

    def setUp(self) -> None:
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                    {"headers": context_headers(self.id())})
        self.driver.delete_all_cookies()
        self.wait = WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.05)

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def find(self, css: str):  # type: ignore[no-untyped-def]
        return self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def submit(self, **fields: str) -> None:
        form = self.find("#new-book")
        for name, value in fields.items():
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        self.driver.execute_script("window.servercovOldPage = true")
        form.find_element(By.TAG_NAME, "button").click()
        # The answer to the POST has loaded: a new document, whole.  Asked of the old
        # element (staleness_of), chromedriver may fail while the documents swap.
        WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.05,
                      ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.execute_script(
                "return !window.servercovOldPage && document.readyState === 'complete'"))

    def test_list_and_detail(self) -> None:
        self.open("/")
        self.assertEqual(self.find("h1").text, "Books")
        self.driver.find_element(By.LINK_TEXT, "Foundation").click()
        self.wait.until(ec.text_to_be_present_in_element((By.ID, "author"), "Isaac Asimov"))
        self.assertEqual(self.find("#author").text, "by Isaac Asimov, 1951")

    def test_form_rejects_a_bad_year(self) -> None:
        self.open("/books/")
        self.driver.find_element(By.LINK_TEXT, "Add a book").click()
        self.submit(title="Dune", year="soon")
        self.assertEqual(self.find("#year-error").text,
                         "The year must be a whole number, like 1965.")
        self.assertEqual(self.find("input[name=title]").get_attribute("value"), "Dune")

    def test_form_adds_a_good_book(self) -> None:
        self.open("/books/new")
        self.submit(title="Dune", author="Frank Herbert", year="1965")
        self.assertEqual(self.find(".flash").text, "Added “Dune”.")
        self.assertIn("Dune (1965)", self.find("#books").text)

    def test_statistics_come_from_the_json_endpoint(self) -> None:
        self.open("/books/")
        self.driver.find_element(By.LINK_TEXT, "Statistics").click()
        self.find("#stats[data-state=ready]")
        self.assertIn("from 1951 to 1969", self.find("#stats").text)
        Select(self.find("#decade")).select_by_value("1950")
        self.wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#decade-books[data-loaded='1950']")))
        self.assertEqual(self.find("#decade-books li").text, "Foundation")


if __name__ == "__main__":
    unittest.main()
