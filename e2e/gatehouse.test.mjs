// End-to-end: the real server, real headless Chromium, a person's clicks.
// Each scenario saves a screenshot under target/e2e/<leg>/ for review.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";

import { PASSWORD, email, launchBrowser, mails, newPage, register, shot, sleep, startServer } from "./harness.mjs";

const GENERIC_FAILURE = "Authentication failed - identity or password/passcode invalid";

let server;
let browser;
const pages = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A scenario: a test that fails instead of hanging. */
const scenario = (name, fn) => test(name, { timeout: 60_000 }, fn);

/** A fresh browser profile; its console is checked when the test ends. */
async function profile(options) {
  const page = await newPage(browser, server.base, options);
  pages.push(page);
  return page;
}

/** Every page opened in a scenario had no script or CSP error. */
function noProblems() {
  for (const page of pages.splice(0)) {
    assert.deepEqual(page.problems, [], "console errors (CSP violations count)");
  }
}

async function signIn(page, address, { remember = false, next, password = PASSWORD } = {}) {
  await page.goto(next ? `/login?next=${encodeURIComponent(next)}` : "/login");
  await page.getByLabel("Email").fill(address);
  await page.getByLabel("Password").fill(password);
  if (remember) await page.getByLabel("Remember me").check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => u.pathname !== "/login");
}

/** The demo's token mode on `page` (already on /demo): a JSON sign-in
 * that stores the token; waits for the 200. */
async function demoTokenLogin(page, address) {
  await page.locator("#t-email").fill(address);
  await page.locator("#t-password").fill(PASSWORD);
  await page.getByRole("button", { name: /Get a token/ }).click();
  await page.locator("#token-out").getByText("POST /login?include_auth_token → 200").waitFor();
}

/** Waits up to 10 s for a mail to `address` that `match` accepts. */
async function mailTo(address, match = () => true) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = mails(server.mailDir).find((m) => m.to.includes(address) && match(m));
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = mails(server.mailDir).map((m) => `${m.to}: ${m.subject}`);
      assert.fail(`no mail to ${address} in 10 s; the sink holds ${JSON.stringify(seen)}`);
    }
    await sleep(100);
  }
}

async function cookie(page, name) {
  return (await page.context().cookies()).find((c) => c.name === name);
}

/** GET /api/me from the page with its cookies: the status. */
async function meStatus(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
    return r.status;
  });
}

scenario("register through the form", async () => {
  const page = await profile();
  const address = email("reg");
  await page.goto("/register");
  await page.getByLabel("Email").fill(address);
  await page.locator("#password").fill(PASSWORD);
  await page.getByLabel("Repeat password").fill("something else");
  await page.getByRole("button", { name: "Register" }).click();
  // Errors next to the field; the email is kept, passwords are not.
  await assert.doesNotReject(page.locator("#password_confirm-errors").getByText("Passwords do not match").waitFor());
  assert.equal(await page.locator("#password_confirm").getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("Email").inputValue(), address);
  assert.equal(await page.locator("#password").inputValue(), "");
  await shot(page, "01a-register-errors");

  await page.locator("#password").fill(PASSWORD);
  await page.getByLabel("Repeat password").fill(PASSWORD);
  await page.getByRole("button", { name: "Register" }).click();
  await page.waitForURL("/");
  await page.locator("#flash").getByText("Your account is ready").waitFor();
  await page.getByText(`Signed in as ${address}`).waitFor();
  assert.equal(await meStatus(page), 200);
  await shot(page, "01b-registered");
  noProblems();
});

scenario("sign in with remember me", async () => {
  const address = email("remember");
  await register(server.base, address);
  const page = await profile();
  await signIn(page, address, { remember: true });
  await page.locator("#flash").getByText("You are signed in.").waitFor();
  const session = await cookie(page, "session");
  assert.ok(session, "a session cookie");
  assert.ok(session.httpOnly, "HttpOnly");
  assert.ok(session.expires > Date.now() / 1000 + 7 * 86400, `persistent cookie, expires ${session.expires}`);
  assert.equal(await meStatus(page), 200);
  await shot(page, "02-remember-me");

  // Without remember me the cookie ends with the browser session.
  const other = await profile();
  await signIn(other, address);
  assert.equal((await cookie(other, "session")).expires, -1);
  noProblems();
});

scenario("the account page shows login_count and hands out a token once", async () => {
  const address = email("account");
  await register(server.base, address); // sign-in 1
  const page = await profile();
  await signIn(page, address, { next: "/account" }); // sign-in 2
  assert.equal(new URL(page.url()).pathname, "/account");
  // The address, then the "change" link (change_email is on by default).
  assert.equal(await page.locator("#account-email").evaluate((dd) => dd.firstChild.textContent.trim()), address);
  assert.equal(await page.locator("#change-email-link").getAttribute("href"), "/change-email");
  assert.equal(await page.locator("#login-count").textContent(), "2");

  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.locator("#flash").getByText("You are signed out.").waitFor();
  await signIn(page, address, { next: "/account" }); // sign-in 3
  assert.equal(await page.locator("#login-count").textContent(), "3");
  await page.getByText("from 127.0.0.1").first().waitFor();
  await shot(page, "03a-account");

  await page.locator("#token-password").fill(PASSWORD);
  await page.getByRole("button", { name: "Get an API token" }).click();
  const token = await page.locator("#api-token").inputValue();
  assert.match(token, /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){2}$/);
  const api = await fetch(`${server.base}/api/test`, { headers: { "Authentication-Token": token } });
  assert.equal(api.status, 200);
  await shot(page, "03b-account-token");
  await page.goto("/account");
  assert.equal(await page.locator("#api-token").count(), 0, "the token is shown only once");
  assert.equal(await meStatus(page), 200, "the session survives re-authentication");
  noProblems();
});

scenario("/demo session mode: /api/me and a like with X-XSRF-Token", async () => {
  const address = email("session");
  await register(server.base, address);
  const page = await profile();
  await signIn(page, address, { next: "/demo" });
  assert.equal(new URL(page.url()).pathname, "/demo");
  await page.locator("#session-state").getByText(`Signed in as ${address}`).waitFor();
  assert.equal(await page.locator("#nav-signin").isVisible(), false, "no 'Sign in' link when signed in");

  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/articles/1/likes") && r.method() === "POST"),
    page.getByRole("button", { name: /Like article 1/ }).click(),
  ]);
  const xsrf = await cookie(page, "XSRF-TOKEN");
  assert.equal(request.headers()["x-xsrf-token"], xsrf.value, "CSRF token from the XSRF-TOKEN cookie");
  const out = page.locator("#session-out");
  await out.getByText(/POST \/api\/articles\/1\/likes → 20[01]/).waitFor();
  const first = await out.textContent();
  await page.getByRole("button", { name: /Like article 1/ }).click();
  await out.getByText("→ 200 OK").waitFor();
  assert.match(first, /"user_id": \d+/);

  await page.getByRole("button", { name: /Who am I/ }).click();
  await out.getByText(`"email": "${address}"`).waitFor();
  await shot(page, "04-demo-session");
  noProblems();
});

scenario("/demo token mode: JSON login, localStorage, Authentication-Token", async () => {
  const address = email("token");
  await register(server.base, address);
  const page = await profile();
  await page.goto("/demo");
  // Signed out: the 401 envelope is shown as it came.
  await page.locator("#session-state").getByText("Not signed in").waitFor();
  await page.locator("#session-out").getByText('"code": 401').waitFor();
  assert.equal(await page.locator("#nav-signin").isVisible(), true);

  await demoTokenLogin(page, address);
  const out = page.locator("#token-out");
  const stored = await page.evaluate(() => localStorage.getItem("gatehouse.token"));
  assert.match(stored, /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){2}$/);
  assert.ok(!(await out.textContent()).includes(stored), "the full token is not displayed");
  const refresh = await cookie(page, "fs_refresh");
  assert.ok(refresh && refresh.httpOnly, "the refresh token is in an HttpOnly cookie");
  assert.equal(await page.evaluate(() => document.cookie.includes("fs_refresh")), false);

  await page.reload(); // the token outlives the page
  await page.locator("#token-state").getByText("A token is stored").waitFor();
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/test")),
    page.getByRole("button", { name: /Call the API/ }).click(),
  ]);
  assert.equal(request.headers()["authentication-token"], stored);
  assert.equal(request.headers()["cookie"], undefined, "no cookie sent in token mode");
  await out.getByText('"msg": "Hello World"').waitFor();
  await shot(page, "05-demo-token");

  // The stored token stops working (here: forged away); the page refreshes
  // it with the cookie and calls again.
  await page.evaluate(() => localStorage.setItem("gatehouse.token", "expired.token.here"));
  await page.getByRole("button", { name: /Call the API/ }).click();
  await out.getByText("↻ refreshed the token").waitFor();
  await out.getByText('"msg": "Hello World"').waitFor();
  const fresh = await page.evaluate(() => localStorage.getItem("gatehouse.token"));
  assert.notEqual(fresh, "expired.token.here", "a working token was stored");
  await shot(page, "05b-demo-token-refreshed");
  noProblems();
});

scenario("sign out everywhere in one browser: the other's session and stored token get 401", async () => {
  const address = email("everywhere");
  await register(server.base, address);
  const a = await profile();
  const b = await profile();
  await signIn(a, address);
  await signIn(b, address, { remember: true, next: "/demo" });
  await demoTokenLogin(b, address);
  await b.getByRole("button", { name: /Call the API/ }).click();
  await b.locator("#token-out").getByText("Hello World").waitFor();
  await b.getByRole("button", { name: /Who am I/ }).click();
  await b.locator("#session-state").getByText("Signed in as").waitFor();

  await a.goto("/account");
  await a.getByRole("button", { name: "Sign out everywhere" }).click();
  await a.waitForURL("/login");
  await a.locator("#flash").getByText("You are signed out everywhere").waitFor();
  await shot(a, "06a-signed-out-everywhere");

  await b.getByRole("button", { name: /Who am I/ }).click();
  await b.locator("#session-out").getByText("GET /api/me → 401").waitFor();
  await b.locator("#session-state").getByText("Not signed in").waitFor();
  await b.getByRole("button", { name: /Call the API/ }).click();
  await b.locator("#token-out").getByText("GET /api/test → 401").waitFor();
  assert.match(await b.locator("#token-out").textContent(), /"code": 401/);
  await b.locator("#token-state").getByText("The stored token was refused").waitFor();
  await shot(b, "06b-other-browser-revoked");
  await b.goto("/account");
  assert.equal(new URL(b.url()).pathname, "/login", "the remembered cookie is dead too");
  noProblems();
});

scenario("the demo's sign-out-everywhere calls, by session and by token", async () => {
  const address = email("democalls");
  await register(server.base, address);
  const a = await profile(); // session mode
  const b = await profile(); // token mode
  const tokenLogin = async () => {
    await b.goto("/demo");
    await demoTokenLogin(b, address);
  };

  await signIn(a, address, { next: "/demo" });
  await tokenLogin();
  await a.locator("#session-everywhere").click();
  await a.locator("#session-out").getByText("POST /logout-everywhere → 200").waitFor();
  await a.locator("#session-state").getByText("Not signed in").waitFor();
  await b.getByRole("button", { name: /Call the API/ }).click();
  await b.locator("#token-out").getByText("GET /api/test → 401").waitFor();

  await signIn(a, address, { next: "/demo" });
  await tokenLogin();
  await b.locator("#token-everywhere").click();
  await b.locator("#token-out").getByText("POST /logout-everywhere → 200").waitFor();
  await a.getByRole("button", { name: /Who am I/ }).click();
  await a.locator("#session-out").getByText("GET /api/me → 401").waitFor();
  await shot(b, "07-demo-everywhere");
  noProblems();
});

scenario("a wrong password shows the generic error and sets no cookie", async () => {
  const address = email("wrong");
  await register(server.base, address);
  const page = await profile();
  await page.goto("/login");
  const before = await cookie(page, "session");
  const messages = [];
  for (const who of [address, email("nobody")]) {
    await page.getByLabel("Email").fill(who);
    await page.getByLabel("Password").fill("not the password");
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    assert.equal(response.status(), 200);
    assert.equal(await response.headerValue("set-cookie"), null, "no Set-Cookie on a failed sign-in");
    messages.push(await page.getByRole("alert").textContent());
  }
  assert.equal(messages[0].trim(), GENERIC_FAILURE);
  assert.equal(messages[1].trim(), GENERIC_FAILURE, "unknown email: the same message");
  assert.equal((await cookie(page, "session")).value, before.value, "the cookie is the anonymous one");
  assert.equal(await meStatus(page), 401);
  await shot(page, "08-wrong-password");
  noProblems();
});

scenario("every page works without JavaScript", async () => {
  const address = email("nojs");
  const page = await profile({ javaScriptEnabled: false });
  await page.goto("/register");
  await page.getByLabel("Email").fill(address);
  await page.locator("#password").fill(PASSWORD);
  await page.getByLabel("Repeat password").fill(PASSWORD);
  await page.getByRole("button", { name: "Register" }).click();
  await page.waitForURL("/");
  await page.goto("/change");
  await page.locator("#password").fill(PASSWORD);
  await page.locator("#new_password").fill("a brand new password");
  await page.locator("#new_password_confirm").fill("a brand new password");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.locator("#flash").getByText("You successfully changed your password.").waitFor();
  await page.goto("/account");
  assert.equal(await page.locator("#previous-sign-in").textContent(), "none: this is the first");
  await shot(page, "09-no-javascript");
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.locator("#flash").getByText("You are signed out.").waitFor();
  noProblems();
});

scenario("forgot password: the mail's link sets a new password and the other browser's session ends", async () => {
  const address = email("forgot");
  const newPassword = "a freshly reset password";
  await register(server.base, address);
  const a = await profile();
  await signIn(a, address);
  assert.equal(await meStatus(a), 200);

  const b = await profile();
  await b.goto("/login");
  await b.getByRole("link", { name: "Forgot your password?" }).click();
  await b.waitForURL("/reset");
  await b.getByLabel("Email").fill(address);
  await b.getByRole("button", { name: "Send me a link" }).click();
  await b.locator("#reset-sent").waitFor();
  assert.ok((await b.locator("#reset-sent").textContent()).includes(address), "the note names the address");
  await shot(b, "10a-reset-sent");

  const mail = await mailTo(address, (m) => m.text.includes("/reset/"));
  const link = /https?:\/\/\S+\/reset\/[A-Za-z0-9._~%-]+/.exec(mail.text)?.[0];
  assert.ok(link, `a reset link in the mail:\n${mail.text}`);
  const url = new URL(link);
  assert.equal(url.origin, server.base, "the link starts with security.public_url");
  await b.goto(url.pathname);
  await b.getByLabel("New password", { exact: true }).fill(newPassword);
  await b.getByLabel("New password again").fill(newPassword);
  await b.getByRole("button", { name: "Set the new password" }).click();
  await b.waitForURL((u) => u.pathname === "/");
  await b.locator("#flash").getByText("You successfully reset your password").waitFor();
  await shot(b, "10b-reset-done");

  assert.equal(await meStatus(b), 200, "the reset signed B in");
  assert.equal(await meStatus(a), 401, "the reset ended A's session");
  const c = await profile();
  await signIn(c, address, { password: newPassword });
  assert.equal(await meStatus(c), 200, "the new password signs in");
  noProblems();
});

/** RFC 6238: the 6-digit code of a base32 `key` for the 30-second step
 * holding `unixSeconds`, as an authenticator app computes it. */
function totp(key, unixSeconds) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of key.replace(/[\s=-]/g, "").toUpperCase()) {
    bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  }
  const bytes = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac("sha1", bytes).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, "0");
}

scenario("two-factor: enrol from the setup page's key, sign in with a code, then with a recovery code", async () => {
  const address = email("twofactor");
  await register(server.base, address);
  const page = await profile();
  await signIn(page, address);
  await page.goto("/account");
  await page.getByRole("link", { name: "Two-factor settings" }).click();
  await page.waitForURL("/tf-setup");
  await page.getByRole("button", { name: "Set up an authenticator app" }).click();
  await page.locator("#tf-qr svg").waitFor();
  const key = (await page.locator("#tf-key").textContent()).trim();
  assert.match(key, /^[A-Z2-7]{32}$/, "the key as text");
  await shot(page, "11a-tf-setup-qr");
  const now = () => Date.now() / 1000;
  await page.getByLabel("Then type the code the app shows").fill(totp(key, now()));
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.locator("#flash").getByText("Two-factor sign-in is on").waitFor();
  await mailTo(address, (m) => m.subject.includes("Two-factor sign-in is on"));

  await page.getByRole("link", { name: "Recovery codes" }).click();
  await page.getByRole("button", { name: "Make a new set of codes" }).click();
  const codes = await page.locator("#recovery-codes li").allTextContents();
  assert.equal(codes.length, 5, `five codes: ${codes}`);
  await shot(page, "11b-recovery-codes");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL("/");
  assert.equal(await meStatus(page), 401);

  // The password, then a code: the enrolment used this step's code, so
  // the app's next one (accepted one step early) signs in.
  const b = await profile();
  await b.goto("/login");
  await b.getByLabel("Email").fill(address);
  await b.getByLabel("Password").fill(PASSWORD);
  await b.getByRole("button", { name: "Sign in" }).click();
  await b.waitForURL((u) => u.pathname === "/tf-validate");
  assert.equal(await meStatus(b), 401, "not signed in before the code");
  await b.getByLabel("Code").fill("000000");
  await b.getByRole("button", { name: "Sign in" }).click();
  await b.getByText("Invalid code").waitFor();
  await b.getByLabel("Code").fill(totp(key, now() + 30));
  await b.getByRole("button", { name: "Sign in" }).click();
  await b.waitForURL((u) => u.pathname === "/");
  await b.locator("#flash").getByText("You are signed in.").waitFor();
  assert.equal(await meStatus(b), 200);

  // No phone: a recovery code, once.
  const c = await profile();
  await c.goto("/login");
  await c.getByLabel("Email").fill(address);
  await c.getByLabel("Password").fill(PASSWORD);
  await c.getByRole("button", { name: "Sign in" }).click();
  await c.waitForURL((u) => u.pathname === "/tf-validate");
  await c.getByRole("link", { name: "Use a recovery code" }).click();
  await c.getByLabel("Recovery code").fill(codes[0]);
  await c.getByRole("button", { name: "Sign in" }).click();
  await c.waitForURL((u) => u.pathname === "/");
  assert.equal(await meStatus(c), 200);
  await mailTo(address, (m) => m.subject.includes("A recovery code was used"));
  await shot(c, "11c-signed-in-with-recovery-code");
  noProblems();
});

scenario("devices: the account page lists both browsers and signs the other one out; a personal token", async () => {
  const address = email("devices");
  await register(server.base, address);
  const a = await profile();
  await signIn(a, address);
  const b = await profile();
  await signIn(b, address);
  assert.equal(await meStatus(b), 200);

  await a.goto("/account");
  // Both browsers (and the registration's own sign-in, from node).
  const browsers = a.locator("#devices li.device", { hasText: "Chrome on Linux" });
  assert.equal(await browsers.count(), 2, "both browsers are listed");
  assert.equal(await a.locator("#devices .this-device").count(), 1, "this device is marked");
  await shot(a, "12a-devices");
  await browsers.filter({ hasNot: a.locator(".this-device") }).getByRole("button", { name: /^Sign out/ }).click();
  await a.waitForURL("/account");
  await a.locator("#flash").getByText("That device is signed out.").waitFor();
  assert.equal(await browsers.count(), 1);
  assert.equal(await meStatus(b), 401, "the other browser is signed out at once");
  assert.equal(await meStatus(a), 200, "this one lives on");

  // A personal access token, shown once, works in a header, then revoked.
  await a.getByLabel("Name").fill("deploy script");
  await a.getByRole("button", { name: "Create a token" }).click();
  const pat = (await a.locator("#new-pat").inputValue()).trim();
  assert.match(pat, /^ghpat_[0-9a-f]{16}_[0-9a-f]{64}$/);
  const me = await fetch(server.base + "/api/me", { headers: { "Authentication-Token": pat } });
  assert.equal(me.status, 200);
  await shot(a, "12b-personal-token");
  await a.goto("/account");
  await a.getByRole("button", { name: "Revoke deploy script" }).click();
  await a.locator("#flash").getByText("The token is revoked.").waitFor();
  const after = await fetch(server.base + "/api/me", { headers: { "Authentication-Token": pat } });
  assert.equal(after.status, 401);
  noProblems();
});
