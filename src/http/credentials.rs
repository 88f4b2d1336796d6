//! What a request presents to prove who it is: an auth token, HTTP Basic
//! credentials, a CSRF token in a header. Reading only; deciding is the
//! guards' job.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rocket::http::Method;
use rocket::Request;

use crate::core::Security;

/// Request headers that may carry the CSRF token.
pub const CSRF_HEADERS: [&str; 3] = ["X-XSRF-Token", "X-CSRF-Token", "X-CSRFToken"];

/// The core state, managed at ignite.
pub fn security<'r>(req: &'r Request<'_>) -> &'r Security {
    req.rocket()
        .state::<Security>()
        .expect("gatehouse state is managed at ignite")
}

/// The token this request presents, if any: the configured header, then
/// `Authorization: Bearer` (when enabled), then, for GET and HEAD only, the
/// query parameter (when configured). Presence alone makes the request an
/// API client.
pub fn presented_token<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    let cfg = &security(req).config;
    if let Some(t) = req.headers().get_one(&cfg.token_header) {
        return Some(t.trim());
    }
    if cfg.accept_bearer {
        if let Some(auth) = req.headers().get_one("Authorization") {
            if let Some((scheme, t)) = auth.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    return Some(t.trim());
                }
            }
        }
    }
    // Only for safe methods: a cross-site page can put a token of its own
    // in a form's URL, never in a header, and a token-authenticated request
    // skips the CSRF and same-site checks.
    if !matches!(req.method(), Method::Get | Method::Head) {
        return None;
    }
    let param = cfg.token_query_param.as_deref()?;
    req.query_value::<&str>(param).and_then(Result::ok)
}

/// The CSRF token presented in a header, if any.
pub fn csrf_from_headers<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    CSRF_HEADERS
        .iter()
        .find_map(|h| req.headers().get_one(h))
        .filter(|v| !v.is_empty())
}

/// Splits `Authorization: Basic base64(email:password)`.
pub fn basic_credentials(req: &Request<'_>) -> Option<(String, String)> {
    let auth = req.headers().get_one("Authorization")?.trim();
    let (scheme, b64) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (email, password) = text.split_once(':')?;
    Some((email.to_owned(), password.to_owned()))
}
