// gatehouse single-page app demo: plain JavaScript, no build step.
//
// Session mode: the browser's cookie session (sign in on /login), API calls
// with credentials: "same-origin", and the CSRF token from the XSRF-TOKEN
// cookie in X-XSRF-Token on unsafe methods.
// Token mode: JSON login with ?include_auth_token, the token kept in
// localStorage and sent as Authentication-Token, no cookies at all.
"use strict";

const TOKEN_KEY = "gatehouse.token";
const $ = (id) => document.getElementById(id);

/** The CSRF token the server left in the XSRF-TOKEN cookie, if any. */
function xsrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)XSRF-TOKEN=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : null;
}

/** Shortens tokens in what is displayed: the page shows answers, not secrets. */
function redact(key, value) {
  return key === "authentication_token" && typeof value === "string"
    ? value.slice(0, 12) + "…"
    : value;
}

function show(out, title, body, ok) {
  out.textContent = title + "\n" + body;
  out.className = "out " + (ok ? "ok" : "bad");
}

/**
 * Calls the API and shows the request and the answer in `out`.
 * mode "session": cookies, plus X-XSRF-Token on unsafe methods.
 * mode "token": the stored token, no cookies.
 * Returns {status, data} (data null unless JSON), or null on network error.
 */
async function call(out, mode, method, path, body, retried) {
  const headers = { Accept: "application/json" };
  if (mode === "session" && method !== "GET") {
    const xsrf = xsrfToken();
    if (xsrf) headers["X-XSRF-Token"] = xsrf;
  }
  if (mode === "token") {
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers["Authentication-Token"] = token;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const title = method + " " + path;
  let res, text;
  try {
    res = await fetch(path, {
      method,
      headers,
      // The token sign-in and /refresh-token carry the HttpOnly fs_refresh
      // cookie (scripts cannot read it); other token calls send no cookie.
      credentials: mode === "token" ? "omit" : "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    text = await res.text();
  } catch (e) {
    show(out, title, "Network error: " + e.message, false);
    return null;
  }
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: shown as text
  }
  const shown = data === null ? text : JSON.stringify(data, redact, 2);
  show(out, title + " → " + res.status + " " + res.statusText, shown, res.ok);
  // A token call refused: the auth token expired or was revoked. One
  // refresh (the refresh token is in the cookie), then the call again.
  if (mode === "token" && res.status === 401 && !retried && localStorage.getItem(TOKEN_KEY)) {
    // Quietly: when the refresh fails too, the 401 stays on show.
    if (await refreshToken(document.createElement("pre"))) {
      const again = await call(out, mode, method, path, body, true);
      if (again) out.textContent = "↻ refreshed the token, then:\n" + out.textContent;
      return again;
    }
  }
  return { status: res.status, data };
}

/** POST /refresh-token: a new auth token for the refresh token in the
 * fs_refresh cookie. True when it worked. */
async function refreshToken(out) {
  const r = await call(out, "refresh", "POST", "/refresh-token", {});
  const token = r && r.status === 200 && r.data.response.user.authentication_token;
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    tokenState();
    return true;
  }
  return false;
}

async function refreshNow() {
  if (await refreshToken($("token-out"))) {
    $("token-out").textContent = "↻ " + $("token-out").textContent;
  } else {
    tokenState(true);
  }
}

// ---- session mode ----------------------------------------------------------

/** Whether this browser is signed in by its session cookie. */
let sessionSignedIn = false;

function sessionState(result) {
  const state = $("session-state");
  const signedIn = Boolean(result && result.status === 200 && result.data);
  sessionSignedIn = signedIn;
  $("nav-signin").hidden = signedIn;
  if (signedIn) {
    state.textContent = "Signed in as " + result.data.email + " (cookie session).";
    state.className = "state on";
  } else if (result && result.status === 401) {
    state.textContent = "Not signed in: sign in on the login page.";
    state.className = "state off";
  } else {
    state.textContent = "The server did not answer; try again.";
    state.className = "state off";
  }
}

async function whoAmI() {
  sessionState(await call($("session-out"), "session", "GET", "/api/me"));
}

async function like() {
  await call($("session-out"), "session", "POST", "/api/articles/1/likes");
}

async function sessionEverywhere() {
  const r = await call($("session-out"), "session", "POST", "/logout-everywhere");
  if (r && r.status === 200) sessionState({ status: 401 });
}

// ---- token mode ------------------------------------------------------------

/** Shows whether a token is stored; `refused` after the server said 401. */
function tokenState(refused) {
  const token = localStorage.getItem(TOKEN_KEY);
  const state = $("token-state");
  if (!token) {
    state.textContent = "No token stored.";
  } else if (refused) {
    state.textContent = "The stored token was refused (revoked or expired): get a new one.";
  } else {
    state.textContent = "A token is stored in localStorage (" + token.slice(0, 12) + "…).";
  }
  state.className = "state " + (token && !refused ? "on" : "off");
}

async function tokenLogin(event) {
  event.preventDefault();
  const body = { email: $("t-email").value, password: $("t-password").value };
  // The answer's HttpOnly fs_refresh cookie is kept only if the sign-in
  // may carry cookies; a browser signed in by session cannot sign in again
  // (400, as in FS), so it signs in without cookies and gets no refresh.
  const mode = sessionSignedIn ? "token" : "token-login";
  const r = await call($("token-out"), mode, "POST", "/login?include_auth_token", body);
  $("t-password").value = "";
  const token = r && r.status === 200 && r.data.response.user.authentication_token;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  tokenState();
}

async function callTest() {
  const r = await call($("token-out"), "token", "GET", "/api/test");
  if (r) tokenState(r.status === 401);
}

async function tokenEverywhere() {
  const r = await call($("token-out"), "token", "POST", "/logout-everywhere");
  // Success revokes the stored token too; it is kept to show the 401 it now gets.
  if (r) tokenState(r.status === 200 || r.status === 401);
}

function forget() {
  localStorage.removeItem(TOKEN_KEY);
  tokenState();
  show($("token-out"), "Token forgotten", "localStorage no longer holds it.", true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("me").addEventListener("click", whoAmI);
  $("like").addEventListener("click", like);
  $("session-everywhere").addEventListener("click", sessionEverywhere);
  $("token-login").addEventListener("submit", tokenLogin);
  $("call-test").addEventListener("click", callTest);
  $("refresh-now").addEventListener("click", refreshNow);
  $("token-everywhere").addEventListener("click", tokenEverywhere);
  $("forget").addEventListener("click", forget);
  tokenState();
  whoAmI();
});
