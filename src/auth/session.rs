//! The browser session: a Rocket private (encrypted and authenticated) cookie.
//!
//! It holds the user's fs_uniquifier (or nothing, for an anonymous visitor
//! who only needs a CSRF secret for the login form), the primary
//! authentication time, a CSRF secret and the issue time. Lifetimes are
//! enforced here on the server, not only by the browser.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;
use rocket::Request;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::SecurityConfig;
use crate::error::msg;

/// Name of the script-readable cookie carrying the CSRF token.
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";
/// Request headers that may carry the CSRF token.
pub const CSRF_HEADERS: [&str; 3] = ["X-XSRF-Token", "X-CSRF-Token", "X-CSRFToken"];

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    /// fs_uniquifier of the signed-in user; `None` for an anonymous session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Id of the server-side session record (signed-in sessions only):
    /// deleting the record ends this session, wherever the cookie was copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// CSRF secret, also handed to the page as the CSRF token.
    pub csrf: String,
    /// Primary authentication time (unix seconds, fractional), as FS `fs_paa`.
    #[serde(default)]
    pub paa: f64,
    /// When this cookie was issued (unix seconds).
    pub iat: i64,
    /// "Remember me": persistent, with the longer lifetime.
    #[serde(default)]
    pub rem: bool,
}

/// Current time as unix seconds with a fraction.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SessionData {
    /// The server-side lifetime of this session, seconds.
    pub fn max_age(&self, cfg: &SecurityConfig) -> u64 {
        if self.rem {
            cfg.remember_max_age
        } else {
            cfg.session_max_age
        }
    }

    /// Whether the server-side lifetime still holds at `now`.
    fn is_fresh(&self, cfg: &SecurityConfig, now: i64) -> bool {
        // A small allowance for clock steps between instances.
        self.iat <= now + 60 && now - self.iat < self.max_age(cfg) as i64
    }

    /// Checks a presented CSRF token against this session's secret, in
    /// constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Reads the session of this request, once (cached for the request).
/// Expired, undecryptable or malformed cookies read as no session.
pub fn current(req: &Request<'_>, cfg: &SecurityConfig) -> Option<SessionData> {
    req.local_cache(|| {
        let cookie = req.cookies().get_private(cfg.session_cookie_name())?;
        let data: SessionData = serde_json::from_str(cookie.value()).ok()?;
        data.is_fresh(cfg, super::unix_now() as i64).then_some(data)
    })
    .clone()
}

fn set_cookies(cookies: &CookieJar<'_>, cfg: &SecurityConfig, data: &SessionData) {
    let value = serde_json::to_string(data).expect("session serializes");
    let mut session = Cookie::build((cfg.session_cookie_name(), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(cfg.cookie_secure);
    session = if data.rem {
        session.max_age(Duration::seconds(cfg.remember_max_age as i64))
    } else {
        // Ends with the browser session; the server also enforces session_max_age.
        session.expires(rocket::http::private::cookie::Expiration::Session)
    };
    cookies.add_private(session);
    set_xsrf_cookie(cookies, cfg, data);
}

/// The session's CSRF token, readable by the page's scripts.
fn set_xsrf_cookie(cookies: &CookieJar<'_>, cfg: &SecurityConfig, data: &SessionData) {
    let mut xsrf = Cookie::build((XSRF_COOKIE, data.csrf.clone()))
        .path("/")
        .http_only(false)
        .same_site(SameSite::Strict)
        .secure(cfg.cookie_secure);
    if data.rem {
        xsrf = xsrf.max_age(Duration::seconds(cfg.remember_max_age as i64));
    }
    cookies.add(xsrf);
}

/// Signs a user in: a brand-new cookie with a fresh CSRF secret, whatever
/// the request carried before (a cookie from before login is useless after).
pub fn start(
    cookies: &CookieJar<'_>,
    cfg: &SecurityConfig,
    uid: &str,
    remember: bool,
    paa: f64,
) -> SessionData {
    let data = SessionData {
        uid: Some(uid.to_owned()),
        sid: Some(random_token()),
        csrf: random_token(),
        paa,
        iat: super::unix_now() as i64,
        rem: remember,
    };
    set_cookies(cookies, cfg, &data);
    data
}

/// The CSRF token for a page or `GET /login`: the current session's, or a
/// new anonymous session's. A standing session's cookie is left alone (so a
/// failed sign-in answers with no cookie at all); only a missing or stale
/// XSRF-TOKEN cookie is put back.
pub fn page_csrf(
    cookies: &CookieJar<'_>,
    cfg: &SecurityConfig,
    current: Option<&SessionData>,
) -> String {
    if let Some(data) = current {
        if cookies.get(XSRF_COOKIE).map(|c| c.value()) != Some(data.csrf.as_str()) {
            set_xsrf_cookie(cookies, cfg, data);
        }
        return data.csrf.clone();
    }
    let data = SessionData {
        uid: None,
        sid: None,
        csrf: random_token(),
        paa: 0.0,
        iat: super::unix_now() as i64,
        rem: false,
    };
    set_cookies(cookies, cfg, &data);
    data.csrf
}

/// Ends the session in this browser: both cookies are removed.
pub fn end(cookies: &CookieJar<'_>, cfg: &SecurityConfig) {
    cookies.remove_private(Cookie::build(cfg.session_cookie_name()).path("/"));
    cookies.remove(Cookie::build(XSRF_COOKIE).path("/"));
}

/// The CSRF token presented in a header, if any.
pub fn csrf_from_headers<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    CSRF_HEADERS
        .iter()
        .find_map(|h| req.headers().get_one(h))
        .filter(|v| !v.is_empty())
}

/// Checks a presented CSRF token against the session. Errors carry the exact
/// FS messages.
pub fn check_csrf(session: Option<&SessionData>, presented: Option<&str>) -> Result<(), String> {
    match (presented.filter(|p| !p.is_empty()), session) {
        (None, _) => Err(msg::CSRF_MISSING.into()),
        (Some(p), Some(s)) if s.csrf_matches(p) => Ok(()),
        (Some(_), _) => Err(msg::CSRF_INVALID.into()),
    }
}
