//! The browser session's cookies: a Rocket private (encrypted and
//! authenticated) cookie holding the core's [`SessionData`], and the
//! script-readable `XSRF-TOKEN` cookie with its CSRF token. Lifetimes are
//! enforced on the server too, not only by the browser.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;
use rocket::Request;

use crate::config::SecurityConfig;
use crate::core::session::SessionData;
use crate::core::Security;

/// Name of the script-readable cookie carrying the CSRF token.
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";

/// The session cookie's contents whatever their age, decrypted once per
/// request (cached); `None` when absent, undecryptable or malformed.
struct Stored(Option<SessionData>);

fn stored<'r>(req: &'r Request<'_>, sec: &Security) -> &'r Option<SessionData> {
    &req.local_cache(|| {
        Stored(
            req.cookies()
                .get_private(sec.config.session_cookie_name())
                .and_then(|c| serde_json::from_str(c.value()).ok()),
        )
    })
    .0
}

/// The session of this request. Expired, undecryptable or malformed
/// cookies read as no session.
pub fn current(req: &Request<'_>, sec: &Security) -> Option<SessionData> {
    stored(req, sec)
        .as_ref()
        .filter(|data| data.is_fresh(&sec.config, sec.now()))
        .cloned()
}

/// The session cookie's contents whatever its age (a sign-in retires the
/// record of an expired one too); `None` when absent or unreadable.
pub fn previous(req: &Request<'_>, sec: &Security) -> Option<SessionData> {
    stored(req, sec).clone()
}

/// Writes the session cookies for `data`.
pub fn set(cookies: &CookieJar<'_>, cfg: &SecurityConfig, data: &SessionData) {
    let value = serde_json::to_string(data).expect("session serializes");
    let mut session = Cookie::build((cfg.session_cookie_name(), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(cfg.cookie_secure);
    session = if data.rem {
        // Expires agrees with Max-Age (Rocket would default it to a week).
        let age = Duration::seconds(cfg.remember_max_age as i64);
        session
            .max_age(age)
            .expires(rocket::time::OffsetDateTime::now_utc() + age)
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
        let age = Duration::seconds(cfg.remember_max_age as i64);
        xsrf = xsrf
            .max_age(age)
            .expires(rocket::time::OffsetDateTime::now_utc() + age);
    }
    cookies.add(xsrf);
}

/// The CSRF token for a page or `GET /login`: the current session's, or a
/// new anonymous session's. A standing session's cookie is left alone (so a
/// failed sign-in answers with no cookie at all); only a missing or stale
/// XSRF-TOKEN cookie is put back.
pub fn page_csrf(cookies: &CookieJar<'_>, sec: &Security, current: Option<&SessionData>) -> String {
    if let Some(data) = current {
        if cookies.get(XSRF_COOKIE).map(|c| c.value()) != Some(data.csrf.as_str()) {
            set_xsrf_cookie(cookies, &sec.config, data);
        }
        return data.csrf.clone();
    }
    let data = sec.anonymous_session();
    set(cookies, &sec.config, &data);
    data.csrf
}

/// Ends the session in this browser: both cookies are removed. The
/// removals carry the attributes the cookies were set with: a browser
/// ignores a `__Host-` cookie (its removal included) without `Secure`.
pub fn end(cookies: &CookieJar<'_>, cfg: &SecurityConfig) {
    cookies.remove_private(
        Cookie::build(cfg.session_cookie_name())
            .path("/")
            .secure(cfg.cookie_secure)
            .http_only(true)
            .same_site(SameSite::Lax),
    );
    cookies.remove(
        Cookie::build(XSRF_COOKIE)
            .path("/")
            .secure(cfg.cookie_secure)
            .same_site(SameSite::Strict),
    );
}

/// The cookie that remembers which accounts signed in from this browser
/// (for the new-browser notice): HMAC marks, no ids.
pub const BROWSER_MARKS: &str = "gh_seen";

/// Keeps `marks` in this browser for a year.
pub fn set_browser_marks(jar: &CookieJar<'_>, cfg: &SecurityConfig, marks: String) {
    jar.add(
        Cookie::build((BROWSER_MARKS, marks))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(cfg.cookie_secure)
            .max_age(rocket::time::Duration::days(365)),
    );
}

/// Flask-Security's cookie that lets this browser skip the second factor.
pub const TF_VALIDITY: &str = "tf_validity";

/// Keeps a `tf_validity` token in this browser for `max_age` seconds, with
/// FS's attributes (HttpOnly, SameSite=Strict).
pub fn set_tf_validity(jar: &CookieJar<'_>, cfg: &SecurityConfig, token: String, max_age: u64) {
    jar.add(
        Cookie::build((TF_VALIDITY, token))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(cfg.cookie_secure)
            .max_age(Duration::seconds(max_age as i64)),
    );
}

/// Keeps a refresh token in FS's cookie (HttpOnly, SameSite=Strict, for the
/// refresh family's lifetime).
pub fn set_refresh(jar: &CookieJar<'_>, cfg: &SecurityConfig, token: String) {
    jar.add(
        Cookie::build((cfg.refresh_token_cookie_name.clone(), token))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(cfg.cookie_secure)
            .max_age(Duration::seconds(cfg.refresh_token_max_age as i64)),
    );
}

/// Removes the refresh token cookie.
pub fn end_refresh(jar: &CookieJar<'_>, cfg: &SecurityConfig) {
    if cfg.refresh_token_cookie_name.is_empty() {
        return;
    }
    jar.remove(
        Cookie::build(cfg.refresh_token_cookie_name.clone())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(cfg.cookie_secure),
    );
}
