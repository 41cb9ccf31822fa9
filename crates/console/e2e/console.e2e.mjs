// End-to-end test of the operations console in headless Chromium (Debian's, via playwright-core).
//
// Run by `cargo test -p twinsite-console --test e2e`, which serves the console with the synthetic
// session (held at 08:00 until an operator resumes) and passes:
//   CONSOLE_URL, CONSOLE_OPERATOR_TOKEN, CONSOLE_VIEWER_TOKEN, CONSOLE_E2E_OUT, CHROMIUM
// Every wait is bounded; the final page is saved as $CONSOLE_E2E_OUT/final.png.

import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const url = process.env.CONSOLE_URL;
const operator = process.env.CONSOLE_OPERATOR_TOKEN;
const viewer = process.env.CONSOLE_VIEWER_TOKEN;
const out = process.env.CONSOLE_E2E_OUT || "target/console-e2e";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!url || !operator || !viewer) {
  console.error("CONSOLE_URL, CONSOLE_OPERATOR_TOKEN and CONSOLE_VIEWER_TOKEN are required");
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

let passed = 0;
function ok(what) { passed += 1; console.log("ok   " + what); }
function fail(what) { throw new Error(what); }
function expect(cond, what) { if (!cond) fail("expected: " + what); ok(what); }

const origin = new URL(url).origin;
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "console-e2e-profile-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(30000);
const problems = [];
page.on("pageerror", (e) => problems.push("page error: " + e.message));
page.on("request", (r) => {
  const u = r.url();
  if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("about:")) problems.push("external request: " + u);
});

async function shot(name) {
  await page.screenshot({ path: path.join(out, name), fullPage: true });
}

// Fetch from inside the page (same origin, the browser's own cookies and headers).
function inPage(pathname, init) {
  return page.evaluate(async ([p, i]) => {
    const r = await fetch(p, i);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  }, [pathname, init]);
}

async function signIn(token, name) {
  await page.fill("#login-token", token);
  await page.fill("#login-name", name);
  await page.click("#login-button");
  await page.waitForSelector("#console", { state: "visible" });
}

async function text(sel) { return (await page.textContent(sel)) || ""; }

let exitCode = 0;
try {
  // 1. Signed out: nothing shown, nothing allowed.
  await page.goto(url);
  await page.waitForSelector("#login-form", { state: "visible" });
  expect(await page.isHidden("#console"), "signed out: the console is hidden");
  const anon = await inPage("/api/actions/failover-now", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ confirm: true }),
  });
  expect(anon.status === 401, "failover-now without a token is refused with 401 (" + anon.status + ")");
  const anonState = await inPage("/api/state", {});
  expect(anonState.status === 401, "the state without a token is refused with 401");
  await page.fill("#login-token", "not-the-token");
  await page.click("#login-button");
  await page.waitForSelector("#banner:not([hidden])");
  expect((await text("#banner")).includes("wrong token"), "a wrong token is refused on the page");
  await shot("signed-out.png");

  // 2. Viewer: sees the session, cannot act.
  await signIn(viewer, "participant");
  await page.waitForSelector('body[data-role="viewer"]');
  await page.waitForSelector('#current-phase[data-phase="primary"]');
  ok("viewer sees the first phase: " + (await text("#current-phase")));
  expect(await page.isHidden("#actions-panel"), "viewer: no operator buttons");
  await page.waitForSelector('#participants tbody tr[data-id="P001"]');
  expect((await text('#participants tr[data-id="P001"] td.connected')) === "primary", "P001 connected at the primary");
  const me = await inPage("/api/me", {});
  const viewerTry = await inPage("/api/actions/pause", {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": me.body.csrf }, body: "{}",
  });
  expect(viewerTry.status === 403, "a viewer's action is refused with 403 (" + viewerTry.status + ")");
  const forged = await inPage("/api/actions/pause", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
  });
  expect(forged.status === 403, "a POST without the CSRF token is refused with 403");
  await page.click("#logout-button");
  await page.waitForSelector("#login-form", { state: "visible" });
  ok("viewer signed out");

  // 3. Operator.
  await signIn(operator, "e2e");
  await page.waitForSelector('body[data-role="operator"]');
  await page.waitForSelector("#actions-panel", { state: "visible" });
  await page.waitForSelector('body[data-status="paused"]');
  ok("operator sees the actions; the schedule is held at " + (await text("#now-label")));
  // Record every phase the page shows from now on (robust to this script being slow).
  await page.evaluate(() => {
    const cur = document.getElementById("current-phase");
    window.__phases = [cur.getAttribute("data-phase")];
    new MutationObserver(() => {
      const p = cur.getAttribute("data-phase");
      if (p && window.__phases[window.__phases.length - 1] !== p) window.__phases.push(p);
    }).observe(cur, { attributes: true, attributeFilter: ["data-phase"] });
  });

  // Filters.
  await page.selectOption("#filter-kind", "IV");
  let kinds = await page.$$eval("#participants tbody tr", (rows) => rows.map((r) => r.dataset.kind));
  expect(kinds.length === 1 && kinds[0] === "IV", "kind filter: only the information vendor (" + kinds.join(",") + ")");
  await page.selectOption("#filter-kind", "");

  // A failover behind a confirmation: cancelling sends nothing.
  await page.click("#btn-crash-failover");
  await page.waitForSelector("#confirm-dialog[open]");
  await page.click("#confirm-cancel");
  await page.waitForSelector("#action-result:has-text('cancelled')");
  const afterCancel = await inPage("/api/state", {});
  expect(afterCancel.body.failover.status === "pending"
    && !afterCancel.body.activity.some((a) => a.what.includes("crash-failover")),
  "cancelled crash failover: nothing sent, failover still pending");

  // Registration, with the runtime's rules.
  await page.fill("#reg-firm", "Eta Securities");
  await page.selectOption("#reg-kind", "EP");
  await page.fill("#reg-brokers", "4321");
  await page.click("#reg-submit");
  await page.waitForSelector("#action-result.ok:has-text('registered P007')");
  ok("registered a participant: " + (await text("#action-result")));
  await page.waitForSelector('#participants tbody tr[data-id="P007"]');
  await page.fill("#reg-firm", "Eta Securities");
  await page.click("#reg-submit");
  await page.waitForSelector("#action-result.err:has-text('already registered')");
  ok("a duplicate registration shows the runtime's error: " + (await text("#action-result")));
  await page.fill("#reg-firm", "Theta Futures");
  await page.fill("#reg-ips", "999.1.1.1");
  await page.click("#reg-submit");
  await page.waitForSelector("#action-result.err:has-text('malformed request')");
  ok("a malformed registration shows the 400 message: " + (await text("#action-result")));
  await page.fill("#reg-ips", "");

  // Fail over now (confirmed) while the schedule is held, then resume.
  await page.click("#btn-failover-now");
  await page.waitForSelector("#confirm-dialog[open]");
  await page.click("#confirm-ok");
  await page.waitForSelector("#action-result.ok:has-text('failover-now: scheduled failover started')");
  ok("failover now: " + (await text("#action-result")));
  await page.waitForSelector("#failover-status:has-text('in progress')");
  ok("the failover is in progress");
  await page.click("#btn-resume");
  await page.waitForSelector('body[data-status="running"]');
  ok("resumed");

  // The failover happens; participants come back at the backup.
  await page.waitForSelector("#active-site:has-text('backup')");
  ok("the backup site is active");
  await page.waitForSelector("#failover-status:has-text('done')");
  const rto = await page.getAttribute("#failover-summary", "data-rto");
  expect(rto !== null && rto !== "", "the RTO is shown (" + rto + " ms)");
  await page.waitForSelector('#participants tr[data-id="P001"] td.connected:has-text("backup")');
  ok("P001 reconnected at the backup");
  await page.waitForSelector('#participants tr[data-id="P005"][data-failing="true"]');
  ok("P005 (never redoes the lookup) fails its check");
  await page.waitForFunction(() => window.__phases.includes("backup"));
  const phases = await page.evaluate(() => window.__phases);
  expect(phases.join(" -> ") === "primary -> failover -> backup", "the page showed the phases change: " + phases.join(" -> "));
  await page.check("#filter-failing");
  const failing = await page.$$eval("#participants tbody tr", (rows) => rows.map((r) => r.dataset.id));
  expect(failing.length >= 1 && failing.includes("P005") && !failing.includes("P001"),
    "failing filter: " + failing.join(","));
  await page.uncheck("#filter-failing");
  expect((await text("#dr-signal")).startsWith("sent"), "the DR signal is shown as sent");

  // The end: the report.
  await page.waitForSelector('body[data-status="finished"]', { timeout: 60000 });
  await page.waitForSelector("#report-panel", { state: "visible" });
  const frame = page.frameLocator("#report-frame");
  await frame.locator("h1").waitFor();
  expect((await frame.locator("h1").textContent()).includes("report"), "the report is shown inline");
  const links = await page.$$eval("#report-panel a", (as) => as.map((a) => a.getAttribute("href")));
  expect(links.includes("/reports/report.json") && links.includes("/reports/participants.csv"), "report links: " + links.join(", "));
  const json = await inPage("/reports/report.json", {});
  expect(json.status === 200 && json.body.failover && Array.isArray(json.body.participants), "report.json downloads");
  const log = await text("#activity");
  expect(log.includes("operator:e2e") && log.includes("failover-now"), "the activity log names the operator and the action");

  // The whole page in one viewport (a full-page capture leaves the report iframe blank).
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: 1400, height: Math.min(height + 20, 6000) });
  await frame.locator("h1").waitFor();
  await page.screenshot({ path: path.join(out, "final.png") });
  ok("screenshot " + path.join(out, "final.png"));
  if (problems.length) fail(problems.join("\n"));
  ok("no page errors and no request left this console");
  console.log(`console e2e: ${passed} passed, 0 failed`);
} catch (e) {
  exitCode = 1;
  console.error("FAILED: " + (e && e.stack ? e.stack : e));
  if (problems.length) console.error(problems.join("\n"));
  try { await shot("failure.png"); console.error("screenshot " + path.join(out, "failure.png")); } catch (_) { /* ignore */ }
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
