// The bookshelf in Debian's Chromium, driven by playwright-core under Node's own test runner.
//
// Run under servercov from examples/browser (after `npm ci` in js/):
//     servercov run -- node --test js/shelf.test.mjs
// One browser for the file; each test gets a fresh browser context whose every
// request carries "js/shelf.test.mjs::<test name>" in X-Servercov-Context
// (with `contexts = test`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
// Headless, and no background traffic (component updates, sync, first-run pings).
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];
const WAIT_MS = 10_000;
const url = (process.env.SERVERCOV_URL ?? "").replace(/\/$/, "");

let browser;

before(async () => {
  assert.ok(url, "SERVERCOV_URL is not set: run under `servercov run -- node --test ...`");
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run .ci/install-browser-deps`);
  // playwright-core gives the browser a fresh temporary --user-data-dir itself.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  await browser?.close();
});

// Run `body(page)` in a fresh browser context labelled with the test's name.
function browserTest(name, body) {
  test(name, async () => {
    const extraHTTPHeaders = process.env.SERVERCOV_CONTEXTS === "test"
      ? { "X-Servercov-Context": `js/shelf.test.mjs::${name}` } : {};
    const context = await browser.newContext({ baseURL: url, extraHTTPHeaders });
    context.setDefaultTimeout(WAIT_MS);
    try {
      await body(await context.newPage());
    } finally {
      await context.close();
    }
  });
}

const text = async (locator) => (await locator.textContent()).trim();

browserTest("list and detail", async (page) => {
  await page.goto("/");
  assert.equal(await text(page.locator("h1")), "Books");
  await page.getByRole("link", { name: "Foundation" }).click();
  await page.waitForURL("**/books/1/");
  assert.equal(await text(page.locator("#author")), "by Isaac Asimov, 1951");
});

browserTest("form rejects a bad year", async (page) => {
  await page.goto("/books/");
  await page.getByRole("link", { name: "Add a book" }).click();
  await page.getByLabel("Title").fill("Dune");
  await page.getByLabel("Year").fill("soon");
  await page.getByRole("button", { name: "Add" }).click();
  const error = page.locator("#year-error");
  await error.waitFor();
  assert.equal(await text(error), "The year must be a whole number, like 1965.");
  assert.equal(await page.getByLabel("Title").inputValue(), "Dune");
});

browserTest("form adds a good book", async (page) => {
  await page.goto("/books/new");
  await page.getByLabel("Title").fill("Dune");
  await page.getByLabel("Author").fill("Frank Herbert");
  await page.getByLabel("Year").fill("1965");
  await page.getByRole("button", { name: "Add" }).click();
  const flash = page.locator(".flash");
  await flash.waitFor();
  assert.equal(await text(flash), "Added “Dune”.");
  assert.match(await text(page.locator("#books")), /Dune \(1965\)/);
});

browserTest("statistics come from the JSON endpoint", async (page) => {
  await page.goto("/books/");
  await page.getByRole("link", { name: "Statistics" }).click();
  await page.locator("#stats[data-state=ready]").waitFor();
  assert.match(await text(page.locator("#stats")), /from 1951 to 1969/);
  await page.locator("#decade").selectOption("1950");
  await page.locator("#decade-books[data-loaded='1950'] li").first().waitFor();
  assert.equal(await text(page.locator("#decade-books li").first()), "Foundation");
});
