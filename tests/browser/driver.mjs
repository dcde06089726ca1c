// Opens one page in Debian's chromium over the DevTools protocol (puppeteer-core) and
// prints what culla's browser tests check, as one JSON object on stdout:
//   { "browser": "Chrome/156…", "dom": "<html…>", "console": ["error: …"],
//     "errors": ["…"], "axe": [{ "id", "impact", "help", "nodes": […] }] }
//
// Console messages and uncaught page errors are read from the protocol's events, not
// from chromium's log output: headless chromium stopped writing the console to stderr
// (Debian 148 and later), and a harness that read stderr saw a silent console there.
//
// Usage: node driver.mjs '<request JSON>'
//   url            the page to open
//   wait_for       a CSS selector to wait for after the load event (optional)
//   settle_ms      time to let scripts run after that (default 300)
//   timeout_ms     limit for loading and waiting (default 60000)
//   screenshot     { "path", "width", "height" } (optional)
//   axe            true: run axe-core's WCAG 2.1 A/AA rules on the page as loaded
//
// The browser is `$CULLA_CHROMIUM`, else /usr/bin/chromium.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const req = JSON.parse(process.argv[2] ?? "{}");
if (!req.url) {
  console.error("driver.mjs: the request names no url");
  process.exit(2);
}
const timeout = req.timeout_ms ?? 60000;

const browser = await puppeteer.launch({
  executablePath: process.env.CULLA_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // The closed network here refuses chromium's own background connections; these
  // flags keep it from trying (and root needs --no-sandbox).
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const out = { browser: await browser.version(), dom: "", console: [], errors: [], axe: null };
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => out.errors.push(String(e?.message ?? e)));
  if (req.screenshot) {
    await page.setViewport({ width: req.screenshot.width, height: req.screenshot.height });
  }
  await page.goto(req.url, { waitUntil: "load", timeout });
  if (req.wait_for) {
    await page.waitForSelector(req.wait_for, { timeout });
  }
  await new Promise((r) => setTimeout(r, req.settle_ms ?? 300));
  if (req.axe) {
    // Evaluated through the protocol, so a page's Content-Security-Policy (no inline
    // script) does not stop the checker from being injected.
    await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
    const result = await page.evaluate(() =>
      globalThis.axe.run(document, {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
      }),
    );
    out.axe = result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")),
    }));
  }
  out.dom = await page.evaluate(() => "<!DOCTYPE html>\n" + document.documentElement.outerHTML);
  if (req.screenshot) {
    await page.screenshot({ path: req.screenshot.path });
  }
} catch (e) {
  out.errors.push(`driver: ${e?.message ?? e}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
