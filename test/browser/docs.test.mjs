// End-to-end test of the docs portal (GET /docs) in headless Chromium:
// a person registers, logs in, sets the JWT, creates a key, sets the key
// and calls GET /v1/me, updates their profile with the key, changes their
// password, logs in again, signs out, and deletes the account, all through
// the page, with the auth bar following along. It saves a screenshot and prints where. Needs
// Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH); `make
// test-docs` runs it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { repoRoot, startAuthapi } from "../authapi.mjs";

const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const artifactDir = process.env.TEST_ARTIFACTS_DIR || path.join(repoRoot, "tmp", "test-artifacts");

let server;
let context;
let userDataDir;

before(async () => {
  server = await startAuthapi();
  userDataDir = mkdtempSync(path.join(tmpdir(), "authapi-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 1000 },
  });
  context.setDefaultTimeout(20_000);
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await server?.stop();
});

test("the docs portal walks the reference flow", async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  const origin = server.url;

  // Everything the page loads must come from authapi itself.
  const offsite = [];
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith(origin + "/") && !u.startsWith("data:")) offsite.push(u);
  });
  // The credentials each API call carried, by "METHOD /path": what the
  // operation's security in the spec says, whatever the bar holds.
  const carried = {};
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (!u.pathname.startsWith("/v1/")) return;
    const h = req.headers();
    carried[`${req.method()} ${u.pathname}`] = [h.authorization && "jwt", h["x-api-key"] && "key"].filter(Boolean).join("+");
  });
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(msg.text());
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const badges = async () => {
    const shown = [];
    for (const id of ["status-jwt", "status-key", "status-none"]) {
      if (await page.locator(`#${id}`).isVisible()) shown.push(await page.locator(`#${id}`).innerText());
    }
    return shown;
  };
  const expectBadges = async (want, when) => {
    // The bar follows Swagger UI's store; give it a moment to render.
    await page.waitForFunction(
      (w) =>
        JSON.stringify(
          ["status-jwt", "status-key", "status-none"]
            .map((id) => document.getElementById(id))
            .filter((el) => !el.hidden)
            .map((el) => el.textContent),
        ) === JSON.stringify(w),
      want,
      { timeout: 5_000 },
    ).catch(() => {});
    assert.deepEqual(await badges(), want, `auth bar ${when}`);
  };

  // execute sends one operation with body (if any) and path parameters
  // and returns the status and body the page shows for it.
  const execute = async (opId, body, params = {}) => {
    const op = page.locator(`[id$="-${opId}"].opblock`);
    if (!(await op.locator(".opblock-body").isVisible())) {
      await op.locator(".opblock-summary").first().click();
    }
    for (const [name, value] of Object.entries(params)) {
      await op.locator(`tr[data-param-name="${name}"] input`).fill(value);
    }
    if (body !== undefined) {
      await op.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
    }
    const clear = op.locator("button.btn-clear");
    if (await clear.isVisible()) await clear.click();
    await op.locator("button.execute").click();
    const row = op.locator(".live-responses-table .response").first();
    await row.waitFor();
    const status = Number((await row.locator(".response-col_status").innerText()).trim());
    const text = await row.locator(".response-col_description pre").first().innerText();
    return { status, text, json: text.trim().startsWith("{") ? JSON.parse(text) : null, op };
  };

  // Swagger UI fills the cursor field with the spec's example, an old
  // position that would start the listing past every item: empty it.
  const FIRST_PAGE = { cursor: "" };

  const res = await page.goto(`${origin}/docs`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"] ?? "", /default-src 'none'/);
  await page.locator("#operations-Authentication-registerUser").waitFor();
  assert.equal(await page.locator(".info .title").first().innerText().then((t) => t.startsWith("authapi")), true);
  await expectBadges(["No credentials set"], "before anything");

  // Register.
  const user = { username: "hershel", email: "hershel@example.com", password: "secureP@ss123", full_name: "Hershel Moshkovitz" };
  const reg = await execute("registerUser", user);
  assert.equal(reg.status, 200, `register: ${reg.text}`);
  assert.equal(reg.json.username, "hershel");

  // Log in: the access_token is captured into the bar.
  const login = await execute("login", { username: "hershel", password: "secureP@ss123" });
  assert.equal(login.status, 200, `login: ${login.text}`);
  const token = login.json.access_token;
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  await expectBadges(["JWT set"], "after login (captured)");

  // Create a key with the JWT: the raw_key is captured too.
  const created = await execute("createApiKey", { name: "browser-key" });
  assert.equal(created.status, 200, `create key: ${created.text}`);
  const rawKey = created.json.raw_key;
  assert.match(rawKey, /^rst_[A-Za-z0-9]{38}$/);
  await expectBadges(["JWT set", "Key set"], "after creating a key (captured)");

  // Clear, and /v1/me is refused.
  await page.locator("#clear").click();
  await expectBadges(["No credentials set"], "after clearing");
  const refused = await execute("getCurrentUser");
  assert.equal(refused.status, 401, `/v1/me without a key: ${refused.text}`);
  assert.equal(refused.json.type, "urn:authapi:problem:unauthenticated");

  // Paste both credentials by hand.
  await page.locator("#jwt-input").fill(token);
  await page.locator("#jwt-form button[type=submit]").click();
  await expectBadges(["JWT set"], "after pasting the JWT");
  await page.locator("#key-input").fill(rawKey);
  await page.locator("#key-form button[type=submit]").click();
  await expectBadges(["JWT set", "Key set"], "after pasting the key");

  // The key works: /v1/me is the registered user.
  const me = await execute("getCurrentUser");
  assert.equal(me.status, 200, `/v1/me: ${me.text}`);
  assert.deepEqual(
    { username: me.json.username, email: me.json.email, full_name: me.json.full_name, id: me.json.id },
    { username: user.username, email: user.email, full_name: user.full_name, id: reg.json.id },
  );
  // The JWT works too: the key is listed.
  const listed = await execute("listApiKeys", undefined, FIRST_PAGE);
  assert.equal(listed.status, 200, `list keys: ${listed.text}`);
  assert.match(listed.text, /browser-key/);

  // The picture: the auth bar, and /v1/me with the response it got.
  await listed.op.locator(".opblock-summary").first().click(); // fold the listing away
  await page.setViewportSize({ width: 1280, height: 1500 });
  await me.op.evaluate((el) => {
    const bar = document.querySelector(".authbar").getBoundingClientRect().height;
    window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - bar - 10);
  });
  mkdirSync(artifactDir, { recursive: true });
  const shot = path.join(artifactDir, "docs-portal.png");
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  // Rotate the key from the page: the replacement's raw_key is captured
  // in place of the old one, which works on through its grace period.
  const rotated = await execute("rotateApiKey", { grace_seconds: 60 }, { key_id: created.json.id });
  assert.equal(rotated.status, 200, `rotate key: ${rotated.text}`);
  assert.equal(rotated.json.name, "browser-key");
  assert.notEqual(rotated.json.raw_key, rawKey);
  const keyInBar = () => page.evaluate(() => window.ui.getState().getIn(["auth", "authorized", "apiKeyAuth", "value"]));
  await page.waitForFunction((want) => window.ui.getState().getIn(["auth", "authorized", "apiKeyAuth", "value"]) === want, rotated.json.raw_key, { timeout: 5_000 }).catch(() => {});
  assert.equal(await keyInBar(), rotated.json.raw_key, "the key set after a rotation");
  const meAfter = await execute("getCurrentUser");
  assert.equal(meAfter.status, 200, `/v1/me with the replacement key: ${meAfter.text}`);

  // Update the profile with the key (PATCH /v1/me).
  const patched = await execute("updateCurrentUser", { full_name: "Hershel M." });
  assert.equal(patched.status, 200, `PATCH /v1/me: ${patched.text}`);
  assert.deepEqual(
    { username: patched.json.username, email: patched.json.email, full_name: patched.json.full_name },
    { username: user.username, email: user.email, full_name: "Hershel M." },
  );
  const log = await execute("listSecurityEvents", undefined, FIRST_PAGE);
  assert.equal(log.status, 200, `security log: ${log.text}`);
  assert.equal(JSON.parse(log.text)[0]?.type, "profile_updated", `security log: ${log.text}`);

  // Change the password with the JWT: the bar forgets the JWT it ended.
  const jwtInBar = () => page.evaluate(() => window.ui.getState().getIn(["auth", "authorized", "bearerAuth", "value"]) ?? null);
  assert.equal(await jwtInBar(), token, "the JWT in the bar before the password change");
  const newPassword = "an0ther-Secure-passw0rd";
  const changed = await execute("changePassword", { current_password: user.password, new_password: newPassword });
  assert.equal(changed.status, 204, `password change: ${changed.text}`);
  await expectBadges(["Key set"], "after the password change (its JWT forgotten)");

  // The old token, pasted back, is refused.
  await page.locator("#jwt-input").fill(token);
  await page.locator("#jwt-form button[type=submit]").click();
  await expectBadges(["JWT set", "Key set"], "after pasting the old JWT");
  const stale = await execute("listApiKeys", undefined, FIRST_PAGE);
  assert.equal(stale.status, 401, `a token from before the password change: ${stale.text}`);
  assert.equal(stale.json.type, "urn:authapi:problem:invalid-token");

  // Log in again with the new password: its token is captured.
  const relogin = await execute("login", { username: user.username, password: newPassword });
  assert.equal(relogin.status, 200, `login with the new password: ${relogin.text}`);
  const second = relogin.json.access_token;
  assert.notEqual(second, token);
  await page.waitForFunction((want) => window.ui.getState().getIn(["auth", "authorized", "bearerAuth", "value"]) === want, second, { timeout: 5_000 }).catch(() => {});
  assert.equal(await jwtInBar(), second, "the JWT in the bar after logging in again");
  const relisted = await execute("listApiKeys", undefined, FIRST_PAGE);
  assert.equal(relisted.status, 200, `list keys with the new token: ${relisted.text}`);

  // Sign out (this token only): the bar forgets it; the key stays.
  const loggedOut = await execute("logout", {});
  assert.equal(loggedOut.status, 204, `logout: ${loggedOut.text}`);
  await expectBadges(["Key set"], "after the logout (its JWT forgotten)");
  assert.equal(await jwtInBar(), null, "the JWT in the bar after the logout");
  await page.locator("#jwt-input").fill(second);
  await page.locator("#jwt-form button[type=submit]").click();
  const ended = await execute("listApiKeys", undefined, FIRST_PAGE);
  assert.equal(ended.status, 401, `the token after the logout: ${ended.text}`);
  assert.equal(ended.json.type, "urn:authapi:problem:invalid-token");
  const meLast = await execute("getCurrentUser");
  assert.equal(meLast.status, 200, `/v1/me after the logout: ${meLast.text}`);
  assert.equal(meLast.json.full_name, "Hershel M.");

  // Delete the account with a fresh login: the bar forgets the JWT, and
  // the key it captured from that user's key creation.
  const third = await execute("login", { username: user.username, password: newPassword });
  assert.equal(third.status, 200, `login before the deletion: ${third.text}`);
  const lastKey = await execute("createApiKey", { name: "last-key" });
  assert.equal(lastKey.status, 200, `create key: ${lastKey.text}`);
  await expectBadges(["JWT set", "Key set"], "before the deletion");
  const deleted = await execute("deleteAccount");
  assert.equal(deleted.status, 204, `account deletion: ${deleted.text}`);
  await expectBadges(["No credentials set"], "after the account deletion (both forgotten)");

  // Each operation got only the credential its security names, though
  // the bar held both.
  assert.deepEqual(
    Object.fromEntries(Object.entries(carried).filter(([op]) => !op.includes("/api-keys/"))),
    {
      "POST /v1/auth/register": "",
      "POST /v1/auth/login": "",
      "POST /v1/auth/api-keys": "jwt",
      "GET /v1/auth/api-keys": "jwt",
      "GET /v1/me": "key",
      "PATCH /v1/me": "key",
      "GET /v1/auth/events": "jwt",
      "POST /v1/auth/password": "jwt",
      "POST /v1/auth/logout": "jwt",
      "DELETE /v1/auth/account": "jwt",
    },
  );

  const violations = await page.evaluate(() => window.__cspViolations);
  assert.deepEqual(violations, [], "Content-Security-Policy violations");
  assert.deepEqual(offsite, [], "requests that left the server");
  // A refused /v1/me logs a console error ("Failed to load resource"):
  // that one is expected, nothing else.
  assert.deepEqual(pageErrors.filter((e) => !/status of 401/.test(e)), [], "page errors");
});
