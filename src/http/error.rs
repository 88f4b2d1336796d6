//! The HTTP error: every failure a request can end in, and the one place
//! where core errors become a status, an envelope or a page. The message a
//! client sees is separate from the cause that is logged; database errors
//! never leak and never turn into a 401 or a "not found".

use rocket::http::Status;
use rocket::response::{self, Redirect, Responder};
use rocket::{catch, Request};
use serde_json::{Map, Value};

use super::envelope::{wants_json, Envelope};
use crate::core::{msg, CoreError, FieldErrors};

/// Everything that can go wrong in a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400 with per-field errors.
    #[error("validation failed: {0:?}")]
    Validation(FieldErrors),
    /// 400 with a form-level message only (CSRF, non-string input, bad JSON).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401 (JSON), or a redirect to the login page (browser). `basic` adds
    /// the WWW-Authenticate challenge and never redirects.
    #[error("unauthenticated")]
    Unauthenticated {
        /// The route accepts HTTP Basic.
        basic: bool,
    },
    /// 401 for a sensitive change by a session or token whose sign-in is
    /// older than `freshness`: JSON gets `reauth_required`, a browser goes
    /// to `/verify` and back.
    #[error("re-authentication required")]
    ReauthRequired,
    /// 403: authenticated, but a role or permission is missing.
    #[error("forbidden")]
    Forbidden,
    /// 403: an unsafe request authenticated by the session cookie came from
    /// another site (Origin or Sec-Fetch-Site).
    #[error("cross-site request")]
    CrossSite,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 405, with the methods the resource allows (the `Allow` header;
    /// empty when unknown).
    #[error("method not allowed")]
    MethodNotAllowed(String),
    /// 408: the body did not arrive within `body_timeout_ms`.
    #[error("request timeout")]
    RequestTimeout,
    /// 413: body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: a body we do not read.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503 + Retry-After: the database could not answer. The cause is logged.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// 429 + Retry-After (seconds): too many attempts from this address or
    /// on this account.
    #[error("too many requests, retry in {0}s")]
    TooManyRequests(u64),
    /// 503 + Retry-After: every password hashing slot is busy.
    #[error("password hashing is overloaded")]
    Busy,
    /// 500: a bug. The cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        if let Some(fields) = e.field_errors() {
            return ApiError::Validation(fields);
        }
        match e {
            CoreError::Throttled(s) => ApiError::TooManyRequests(s),
            CoreError::Busy => ApiError::Busy,
            CoreError::Unavailable(c) => ApiError::Unavailable(c),
            CoreError::NoSuchUser => ApiError::Unauthenticated { basic: false },
            CoreError::Internal(c) => ApiError::Internal(c),
            // Those with field errors were answered above.
            other => ApiError::Internal(format!("unmapped core error {other:?}")),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        CoreError::from(e).into()
    }
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> Status {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => Status::BadRequest,
            ApiError::Unauthenticated { .. } | ApiError::ReauthRequired => Status::Unauthorized,
            ApiError::Forbidden | ApiError::CrossSite => Status::Forbidden,
            ApiError::NotFound => Status::NotFound,
            ApiError::MethodNotAllowed(_) => Status::MethodNotAllowed,
            ApiError::PayloadTooLarge => Status::PayloadTooLarge,
            ApiError::RequestTimeout => Status::RequestTimeout,
            ApiError::UnsupportedMediaType => Status::UnsupportedMediaType,
            ApiError::TooManyRequests(_) => Status::TooManyRequests,
            ApiError::Unavailable(_) | ApiError::Busy => Status::ServiceUnavailable,
            ApiError::Internal(_) => Status::InternalServerError,
        }
    }

    /// The message the client sees.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Validation(f) => f.messages().join(" "),
            ApiError::BadRequest(m) => m.clone(),
            ApiError::Unauthenticated { .. } => msg::UNAUTHENTICATED.into(),
            ApiError::ReauthRequired => msg::REAUTH_REQUIRED.into(),
            ApiError::Forbidden => msg::UNAUTHORIZED.into(),
            ApiError::CrossSite => msg::CROSS_SITE.into(),
            ApiError::NotFound => "Not found.".into(),
            ApiError::MethodNotAllowed(_) => "Method not allowed.".into(),
            ApiError::PayloadTooLarge => "Request body is too large.".into(),
            ApiError::RequestTimeout => "The request body took too long to arrive.".into(),
            ApiError::UnsupportedMediaType => {
                "Unsupported content type: send application/json or a form.".into()
            }
            ApiError::TooManyRequests(1) => "Too many attempts. Try again in 1 second.".into(),
            ApiError::TooManyRequests(s) => {
                format!("Too many attempts. Try again in {s} seconds.")
            }
            ApiError::Unavailable(_) | ApiError::Busy => {
                "Service temporarily unavailable, please retry shortly.".into()
            }
            ApiError::Internal(_) => "Internal server error.".into(),
        }
    }

    /// The JSON envelope form of this error.
    pub fn envelope(&self) -> Envelope {
        let mut response = Map::new();
        match self {
            ApiError::Validation(f) => {
                response.insert("errors".into(), serde_json::json!(f.messages()));
                response.insert("field_errors".into(), Value::Object(f.by_field()));
            }
            ApiError::ReauthRequired => {
                // FS's keys for this answer.
                response.insert("errors".into(), serde_json::json!([self.public_message()]));
                response.insert("reauth_required".into(), Value::Bool(true));
            }
            other => {
                response.insert("errors".into(), serde_json::json!([other.public_message()]));
            }
        }
        let env = Envelope::new(self.status(), response);
        match self {
            ApiError::Unavailable(_) => env.header("Retry-After", "2"),
            ApiError::Busy => env.header("Retry-After", "1"),
            ApiError::TooManyRequests(s) => env.header("Retry-After", s.to_string()),
            ApiError::MethodNotAllowed(allow) if !allow.is_empty() => {
                env.header("Allow", allow.clone())
            }
            ApiError::Unauthenticated { basic: true } => {
                env.header("WWW-Authenticate", r#"Basic realm="Login Required""#)
            }
            _ => env,
        }
    }

    fn log(&self) {
        match self {
            ApiError::Unavailable(cause) => tracing::error!(%cause, "database unavailable"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::Busy => tracing::warn!("password hashing slots exhausted"),
            _ => {}
        }
    }
}

/// `/login?next=<path and query>`, with `/` and `?` kept and `=`, `&`
/// percent-encoded, as FS does.
pub fn login_redirect_target(req: &Request<'_>) -> String {
    redirect_with_next(req, "/login")
}

/// `<page>?next=<path and query>`, encoded as [`login_redirect_target`].
fn redirect_with_next(req: &Request<'_>, page: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/')
        .remove(b'?')
        .remove(b':')
        .remove(b'@')
        .remove(b'!')
        .remove(b'$')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b',')
        .remove(b';');
    let uri = req.uri();
    let mut target = uri.path().to_string();
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q.as_str());
    }
    format!("{page}?next={}", utf8_percent_encode(&target, KEEP))
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        self.log();
        if wants_json(req) {
            return self.envelope().respond_to(req);
        }
        match &self {
            ApiError::Unauthenticated { basic: false } => {
                Redirect::found(login_redirect_target(req)).respond_to(req)
            }
            ApiError::ReauthRequired => {
                Redirect::found(redirect_with_next(req, "/verify")).respond_to(req)
            }
            _ => {
                let env = self.envelope();
                let context = serde_json::json!({
                    "status": self.status().code,
                    "reason": self.status().reason(),
                    "message": self.public_message(),
                });
                let page = req
                    .rocket()
                    .state::<super::assets::Assets>()
                    .map(|a| a.render("error", context))
                    .and_then(|r| {
                        r.map_err(|e| tracing::error!(error = %e, "error page cannot be rendered"))
                            .ok()
                    })
                    .unwrap_or_else(|| PLAIN_500.to_owned());
                let mut res = response::Response::build_from(
                    (rocket::http::ContentType::HTML, page).respond_to(req)?,
                );
                res.status(self.status())
                    .raw_header("Cache-Control", "private, no-store");
                for h in env.headers {
                    res.header(h);
                }
                res.ok()
            }
        }
    }
}

/// The page when no template can be rendered.
pub const PLAIN_500: &str =
    "<!doctype html><title>Error</title><p>Something went wrong. Please try again.</p>";

/// The error a request guard failed with, kept for the catcher.
pub(crate) struct GuardFailure(pub Option<ApiError>);

/// Records why a guard failed, so the catcher can answer precisely.
pub(crate) fn remember_failure(req: &Request<'_>, err: &ApiError) {
    req.local_cache(|| GuardFailure(Some(err.clone())));
}

/// The one catcher: answers with the guard's recorded error if there is one,
/// else with the plain error for the status, as an envelope or a page.
#[catch(default)]
pub fn default_catcher(status: Status, req: &Request<'_>) -> ApiError {
    // A guard's recorded reason, when this is its failure: a handler may
    // have handled that failure itself and failed later with another status.
    if let Some(err) = &req.local_cache(|| GuardFailure(None)).0 {
        if err.status() == status {
            return err.clone();
        }
    }
    match status.code {
        400 => ApiError::BadRequest("The request could not be understood.".into()),
        401 => ApiError::Unauthenticated { basic: false },
        403 => ApiError::Forbidden,
        // No route took the request, but the path exists: only the method
        // is wrong. (A route that ran and answered 404 keeps its 404.)
        404 if req.route().is_none() => match allowed_methods(req) {
            Some(allow) => ApiError::MethodNotAllowed(allow),
            None => ApiError::NotFound,
        },
        // Rocket answers a path parameter it cannot parse with 422; for a
        // client that is simply a resource that does not exist.
        404 | 422 => ApiError::NotFound,
        405 => ApiError::MethodNotAllowed(String::new()),
        408 => ApiError::RequestTimeout,
        413 => ApiError::PayloadTooLarge,
        429 => ApiError::TooManyRequests(1),
        415 => ApiError::UnsupportedMediaType,
        503 => ApiError::Unavailable(format!("status {status} from a guard")),
        _ => ApiError::Internal(format!("unhandled status {status}")),
    }
}

/// The methods of the routes whose path template matches this request's
/// path (`Allow: GET, HEAD, POST`), when there are any: the path exists and
/// only the method is wrong. `None` for a path no route serves.
fn allowed_methods(req: &Request<'_>) -> Option<String> {
    use rocket::http::Method;
    let path = req.uri().path();
    let mut methods: Vec<Method> = req
        .rocket()
        .routes()
        .filter(|r| template_matches(r.uri.path(), path.as_str()))
        .map(|r| r.method)
        .collect();
    if methods.is_empty() {
        return None;
    }
    // Rocket answers HEAD for every GET route.
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.sort_by_key(|m| m.as_str());
    methods.dedup();
    Some(
        methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Whether `path` fits a route's path template: static segments equal,
/// `<name>` any one non-empty segment, `<name..>` whatever follows.
fn template_matches(template: &str, path: &str) -> bool {
    let mut want = template.split('/').filter(|s| !s.is_empty());
    let mut have = path.split('/').filter(|s| !s.is_empty());
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), _) if w.starts_with('<') && w.ends_with("..>") => return true,
            (Some(w), Some(_)) if w.starts_with('<') && w.ends_with('>') => {}
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn path_templates_match_as_rocket_routes_do() {
        use super::template_matches as m;
        assert!(m("/login", "/login"));
        assert!(m("/", "/"));
        assert!(!m("/login", "/login/x"));
        assert!(!m("/login", "/"));
        assert!(m("/api/articles/<id>/likes", "/api/articles/7/likes"));
        assert!(!m("/api/articles/<id>/likes", "/api/articles/likes"));
        assert!(m("/static/<path..>", "/static/a/b.css"));
        assert!(!m("/static/<path..>", "/other/a.css"));
    }

    #[test]
    fn the_wait_is_worded_for_one_and_for_many_seconds() {
        assert_eq!(
            ApiError::TooManyRequests(1).public_message(),
            "Too many attempts. Try again in 1 second."
        );
        assert_eq!(
            ApiError::TooManyRequests(60).public_message(),
            "Too many attempts. Try again in 60 seconds."
        );
    }
}
