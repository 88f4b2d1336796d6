// The real gatehouse binary on a loopback port, and Debian's Chromium driven
// by playwright-core, for the end-to-end tests.
//
//   GATEHOUSE_BIN    the server binary (default: target/debug/gatehouse)
//   GATEHOUSE_E2E_DB database URL (default: a fresh SQLite file)
//   E2E_LEG          name of this run, for the screenshot folder (default: sqlite)
//   CHROMIUM         the browser (default: /usr/bin/chromium)

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const LEG = process.env.E2E_LEG || "sqlite";
export const SHOTS = join(ROOT, "target", "e2e", LEG);
export const PASSWORD = "correct horse battery";

/** The launch flags that work on these machines (playwright adds --headless
 * and a fresh temporary profile, i.e. --user-data-dir, itself). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the server with fresh secrets and bcrypt cost 4; resolves when
 * /readyz answers 200. */
export async function startServer() {
  const bin = process.env.GATEHOUSE_BIN || join(ROOT, "target", "debug", "gatehouse");
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-e2e-"));
  const db = process.env.GATEHOUSE_E2E_DB || `sqlite://${join(dir, "e2e.db")}?mode=rwc`;
  const port = await freePort();
  mkdirSync(SHOTS, { recursive: true });
  const logPath = join(SHOTS, "server.log");
  const log = openSync(logPath, "w");
  const secret = () => randomBytes(32).toString("base64");
  const child = spawn(bin, [], {
    cwd: ROOT,
    stdio: ["ignore", log, log],
    env: {
      PATH: process.env.PATH,
      ROCKET_ADDRESS: "127.0.0.1",
      ROCKET_PORT: String(port),
      ROCKET_SECRET_KEY: randomBytes(64).toString("base64"),
      ROCKET_DATABASES: `{gatehouse={url="${db}"}}`,
      // Idle keep-alive connections (node's fetch pools them) would hold a
      // graceful shutdown for the whole default grace of 10 s.
      ROCKET_SHUTDOWN: "{grace=2,mercy=1}",
      ROCKET_SECURITY: `{secret_key="${secret()}",password_salt="${secret()}",bcrypt_cost=4}`,
    },
  });
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new Error(`gatehouse exited (${JSON.stringify(exited)}):\n${readFileSync(logPath, "utf8")}`);
    }
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`gatehouse not ready in 30 s:\n${readFileSync(logPath, "utf8")}`);
    }
    await sleep(100);
  }
  return {
    base,
    db,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(r, 15_000)));
      await Promise.race([done, timeout]);
      clearTimeout(timer);
      if (!exited) child.kill("SIGKILL");
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * A new browser profile (its own cookies and localStorage) with one page.
 * Console errors and page errors (a CSP violation is one) are collected in
 * `page.problems`; a scenario asserts there are none.
 */
export async function newPage(browser, base, options = {}) {
  const context = await browser.newContext({ baseURL: base, ...options });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (m) => {
    // A 401 or 400 the demo asks for on purpose is logged by Chromium as a
    // failed resource load; anything else is a problem.
    if (m.type() === "error" && !/status of 40[01]/.test(m.text())) {
      page.problems.push(`${m.text()} (${m.location().url})`);
    }
  });
  page.on("pageerror", (e) => page.problems.push(String(e)));
  return page;
}

/** Saves a full-page screenshot for review. */
export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

let counter = 0;
/** A new unique email for one scenario. */
export function email(tag) {
  counter += 1;
  return `${tag}-${counter}-${randomBytes(3).toString("hex")}@example.com`;
}

/** Creates an account by the JSON API (which also counts as a sign-in). */
export async function register(base, address) {
  const r = await fetch(`${base}/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ email: address, password: PASSWORD, password_confirm: PASSWORD }),
  });
  if (r.status !== 200) throw new Error(`register ${address}: ${r.status} ${await r.text()}`);
}
