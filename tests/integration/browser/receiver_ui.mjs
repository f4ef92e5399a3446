// Drives Debian's Chromium (headless, through playwright-core) against a running
// `redline receiver` and prints what a person would see as one JSON object on stdout; the Rust
// test (tests/integration/receiver_ui.rs) asserts on it. Screenshots of every view go to
// `shots`. Arguments: one JSON object {chromium, bearer: {base, token, fingerprint, xssFingerprint},
// basic: {base, user, password}, shots}.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = {};
// The flags this machine needs: no sandbox as root, no GPU, and nothing that reaches for the
// network (closed here), or Chromium stalls.
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

// Every dialog any page opens (alert(1) from an injected script would be one).
const dialogs = [];
async function context(options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  ctx.on("page", (p) => p.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  return ctx;
}
async function visit(page, url) {
  const r = await page.goto(url);
  return { status: r.status(), text: await page.innerText("body"), headers: r.headers() };
}
async function shot(page, name) {
  await page.screenshot({ path: `${cfg.shots}/${name}.png`, fullPage: true });
}
/// What an injected element would leave behind in the page.
async function injected(page) {
  return page.evaluate(() => ({
    images: document.querySelectorAll("img").length,
    scripts: Array.from(document.querySelectorAll("script")).map((s) => s.getAttribute("src") || "inline"),
    flag: window.__xss === 1,
  }));
}
async function signIn(page, base, token) {
  await page.goto(`${base}/login`);
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  return { url: page.url(), text: await page.innerText("body") };
}

const b = cfg.bearer;
{
  // A browser without a session: the sign-in form or a 401, never data.
  const ctx = await context();
  const page = await ctx.newPage();
  out.anonymous = {
    overview: await visit(page, `${b.base}/`),
    service: await visit(page, `${b.base}/services/checkout`),
    alert: await visit(page, `${b.base}/alerts/${b.fingerprint}`),
    fragment: await visit(page, `${b.base}/?fragment=1`),
  };
  await page.goto(`${b.base}/`);
  await shot(page, "login");
  out.wrongToken = await signIn(page, b.base, "not-the-token");
  out.wrongTokenCookies = await ctx.cookies();
  await ctx.close();
}
{
  const ctx = await context();
  const page = await ctx.newPage();
  out.signIn = await signIn(page, b.base, b.token);
  out.cookies = await ctx.cookies();
  out.overview = { text: await page.innerText("main"), injected: await injected(page) };
  await shot(page, "overview");

  // The alert with HTML in its labels, reached by its link.
  await Promise.all([page.waitForNavigation(), page.click(`a[href="/alerts/${b.xssFingerprint}"]`)]);
  out.xssAlert = {
    url: page.url(),
    title: await page.innerText("h1"),
    text: await page.innerText("main"),
    injected: await injected(page),
  };
  await shot(page, "alert-with-html-labels");

  await page.goto(`${b.base}/alerts/${b.fingerprint}`);
  out.alert = {
    text: await page.innerText("main"),
    timeline: await page.$$eval("ol.timeline li", (li) => li.map((x) => x.innerText)),
  };
  await shot(page, "alert-history");

  await page.goto(`${b.base}/services/checkout`);
  out.service = {
    text: await page.innerText("main"),
    reasons: await page.$$eval("ul.reasons li", (li) => li.map((x) => x.innerText)),
    checks: await page.$$eval("#checks tbody tr", (tr) => tr.map((x) => x.innerText)),
    plots: await page.$$eval("svg.plot", (s) => s.map((x) => ({
      label: x.getAttribute("aria-label"),
      lines: x.querySelectorAll("polyline").length,
      points: Array.from(x.querySelectorAll("polyline")).map((p) => p.getAttribute("points").split(" ").length),
    }))),
    injected: await injected(page),
  };
  await shot(page, "service-readiness");

  // Live refresh: a new alert shows up on the open overview without a reload.
  await page.goto(`${b.base}/`);
  await page.evaluate(() => { window.__sameDocument = true; });
  const posted = await fetch(`${b.base}/api/v2/alerts`, {
    method: "POST",
    headers: { authorization: `Bearer ${b.token}`, "content-type": "application/json" },
    body: JSON.stringify([{ labels: { alertname: "ArrivedWhileWatching", service: "checkout", severity: "warning" } }]),
  });
  out.livePost = posted.status;
  try {
    await page.waitForFunction(() => document.querySelector("main").innerText.includes("ArrivedWhileWatching"),
      null, { timeout: 30000 });
    out.live = { shown: true, sameDocument: await page.evaluate(() => window.__sameDocument === true) };
  } catch (e) {
    out.live = { shown: false, error: String(e) };
  }
  out.liveStatus = await page.innerText("#refreshed");
  await shot(page, "overview-live");

  // Sign out: the session ends, the page asks again.
  await Promise.all([page.waitForNavigation(), page.click("header button[type=submit]")]);
  out.afterSignOut = await visit(page, `${b.base}/`);
  await ctx.close();
}
{
  // JavaScript off: the same read-only views, rendered by the server.
  const ctx = await context({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  out.noJs = { signIn: await signIn(page, b.base, b.token) };
  out.noJs.overview = await page.innerText("main");
  out.noJs.status = await page.innerText("#refreshed");
  await shot(page, "overview-no-js");
  await page.goto(`${b.base}/services/checkout`);
  out.noJs.service = await page.innerText("main");
  out.noJs.plots = await page.$$eval("svg.plot", (s) => s.length);
  await shot(page, "service-no-js");
  await page.goto(`${b.base}/alerts/${b.fingerprint}`);
  out.noJs.timeline = await page.$$eval("ol.timeline li", (li) => li.length);
  await ctx.close();
}
{
  // Basic auth: the browser's own prompt (a 401 with the challenge), then the data.
  const k = cfg.basic;
  const anon = await context();
  const page = await anon.newPage();
  // Headless Chromium cannot show the prompt: it ends the navigation with
  // ERR_INVALID_AUTH_CREDENTIALS, after the 401 and its challenge arrived.
  const seen = [];
  page.on("response", (r) => seen.push({ status: r.status(), headers: r.headers() }));
  let error = null;
  try { await page.goto(`${k.base}/`); } catch (e) { error = String(e).split("\n")[0]; }
  out.basicAnonymous = { ...(seen[0] || {}), error, text: await page.innerText("body").catch(() => "") };
  await anon.close();
  const ctx = await context({ httpCredentials: { username: k.user, password: k.password } });
  const p2 = await ctx.newPage();
  out.basic = await visit(p2, `${k.base}/`);
  await shot(p2, "overview-basic-auth");
  await ctx.close();
}
out.dialogs = dialogs;
await browser.close();
process.stdout.write(JSON.stringify(out));
