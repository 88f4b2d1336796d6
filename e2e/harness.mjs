// The real gatehouse binary on a loopback port, and Debian's Chromium driven
// by playwright-core, for the end-to-end tests.
//
//   GATEHOUSE_BIN    the server binary (default: target/debug/gatehouse)
//   GATEHOUSE_E2E_DB database URL (default: a fresh SQLite file)
//   E2E_LEG          name of this run, for the screenshot folder (default: sqlite)
//   CHROMIUM         the browser (default: /usr/bin/chromium)
//
// Mail goes by SMTP to tests/smtp/sink.py (run by target/smtp-venv's
// python), which writes every message it accepts to `server.mailDir`.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sends SIGTERM to `child` and waits for it to exit (SIGKILL after
 * `graceMs`). */
async function terminate(child, isExited, graceMs) {
  if (isExited() || child.pid === undefined) return; // exited, or never started
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(r, graceMs)));
  await Promise.race([done, timeout]);
  clearTimeout(timer);
  if (!isExited()) {
    child.kill("SIGKILL");
    await done;
  }
}

/** Starts tests/smtp/sink.py on a free port writing to `dir`; resolves
 * once it prints "ready". Its stderr goes to `logPath`. */
async function startSmtpSink(dir, logPath) {
  const python = join(ROOT, "target", "smtp-venv", "bin", "python");
  if (!existsSync(python)) throw new Error(`${python} not found: scripts/venvs makes it`);
  const port = await freePort();
  const log = openSync(logPath, "w");
  const child = spawn(python, [join(ROOT, "tests", "smtp", "sink.py"), String(port), dir], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", log],
  });
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  const stop = () => terminate(child, () => exited, 5_000);
  try {
    await new Promise((ok, fail) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error("SMTP sink not ready in 15 s")), 15_000);
      child.once("error", (e) => (clearTimeout(timer), fail(e)));
      child.once("exit", () => (clearTimeout(timer), fail(new Error(`SMTP sink exited (${JSON.stringify(exited)})`))));
      child.stdout.on("data", (chunk) => {
        out += chunk;
        if (out.split("\n").some((l) => l.trim() === "ready")) {
          clearTimeout(timer);
          ok();
        }
      });
    });
  } catch (e) {
    await stop();
    throw new Error(`${e.message}:\n${readFileSync(logPath, "utf8")}`);
  }
  child.stdout.resume(); // nothing more is expected; never let the pipe fill
  return { port, stop };
}

/** Starts the SMTP sink and the server with fresh secrets and bcrypt cost
 * 4; resolves when /readyz answers 200. */
export async function startServer() {
  const bin = process.env.GATEHOUSE_BIN || join(ROOT, "target", "debug", "gatehouse");
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-e2e-"));
  const db = process.env.GATEHOUSE_E2E_DB || `sqlite://${join(dir, "e2e.db")}?mode=rwc`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  mkdirSync(SHOTS, { recursive: true });
  const mailDir = join(dir, "mail");
  const sink = await startSmtpSink(mailDir, join(SHOTS, "smtp-sink.log"));
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
      ROCKET_SECURITY:
        `{secret_key="${secret()}",password_salt="${secret()}",bcrypt_cost=4,` +
        `public_url="${base}",totp_secrets={1="${secret()}"}}`,
      ROCKET_MAIL:
        `{transport="smtp",smtp_host="127.0.0.1",smtp_port=${sink.port},` +
        `smtp_security="none",from="Gatehouse <no-reply@example.com>"}`,
    },
  });
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      await sink.stop();
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
      await sink.stop();
      throw new Error(`gatehouse not ready in 30 s:\n${readFileSync(logPath, "utf8")}`);
    }
    await sleep(100);
  }
  return {
    base,
    db,
    /** Where the SMTP sink writes the mails it accepts (see `mails`). */
    mailDir,
    async stop() {
      try {
        await terminate(child, () => exited, 15_000);
      } finally {
        await sink.stop();
      }
    },
  };
}

/** Decodes quoted-printable text (soft line breaks, =XX escapes) as UTF-8;
 * `text` holds one byte a character (read as latin1). */
function decodeQuotedPrintable(text) {
  const bytes = [];
  const s = text.replace(/=\r?\n/g, "");
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(s.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Decodes RFC 2047 encoded words (=?utf-8?q?...?= and =?utf-8?b?...?=). */
function decodeHeader(value) {
  return value
    .replace(/\?=\s+=\?/g, "?==?") // whitespace between encoded words is dropped
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_, _charset, enc, data) =>
      enc.toUpperCase() === "B"
        ? Buffer.from(data, "base64").toString("utf8")
        : decodeQuotedPrintable(data.replace(/_/g, " ")),
    );
}

/** Splits a MIME entity into lower-cased, unfolded headers and its body. */
function parseEntity(raw) {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : "";
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { headers, body };
}

/** The first text/plain part of an entity, decoded. */
function plainText({ headers, body }) {
  const type = headers["content-type"] || "text/plain";
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (/^multipart\//i.test(type) && boundary) {
    const parts = body.split(`--${boundary}`).slice(1);
    for (const part of parts) {
      if (part.startsWith("--")) break; // the closing delimiter
      const text = plainText(parseEntity(part.replace(/^\r?\n/, "")));
      if (text !== null) return text;
    }
    return null;
  }
  if (!/^text\/plain/i.test(type)) return null;
  const encoding = (headers["content-transfer-encoding"] || "7bit").toLowerCase();
  if (encoding === "quoted-printable") return decodeQuotedPrintable(body);
  if (encoding === "base64") return Buffer.from(body, "base64").toString("utf8");
  return Buffer.from(body, "latin1").toString("utf8"); // 7bit or 8bit
}

/** The mails the SMTP sink accepted so far, oldest first:
 * [{ to, subject, text }] with the text/plain part decoded. */
export function mails(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".eml"))
    .sort()
    .map((f) => {
      const entity = parseEntity(readFileSync(join(dir, f), "latin1"));
      const text = plainText(entity);
      return {
        to: decodeHeader(entity.headers["to"] || ""),
        subject: decodeHeader(entity.headers["subject"] || ""),
        text: text === null ? "" : text,
      };
    });
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
