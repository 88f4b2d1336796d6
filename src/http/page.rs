//! What the auth pages share: the request context ([`Ctx`]), the answer
//! type ([`Reply`]: envelope, page or redirect), form state for templates,
//! and the sign-in answer (session cookie, token, envelope or redirect).

use rocket::http::{CookieJar, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use rocket::response::{self, Redirect, Responder};
use rocket::Request;
use serde_json::{Map, Value};

use super::cookies;
use super::credentials::security;
use super::envelope::{wants_json, Envelope};
use super::error::ApiError;
use super::flash::{self, Flash};
use super::guards::Rejected;
use super::input::Input;
use crate::core::session::SessionData;
use crate::core::validate::is_safe_next;
use crate::core::{msg, CoreError, FieldErrors, Security};
use crate::db::User;

/// What an auth endpoint answers: an envelope for JSON clients, a page or a
/// redirect for browsers.
pub enum Reply {
    /// JSON envelope.
    Json(Envelope),
    /// A rendered page with its status.
    Page(Status, String),
    /// 302 to a same-site path.
    Redirect(String),
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Reply::Json(env) => env.respond_to(req),
            Reply::Page(status, page) => response::Response::build_from(
                (rocket::http::ContentType::HTML, page).respond_to(req)?,
            )
            .status(status)
            .raw_header("Cache-Control", "private, no-store")
            .ok(),
            Reply::Redirect(to) => {
                response::Response::build_from(Redirect::found(location(&to)).respond_to(req)?)
                    .raw_header("Cache-Control", "private, no-store")
                    .ok()
            }
        }
    }
}

/// Characters a validated `next` may hold that a `Location` header may not
/// carry as they are: they are percent-encoded (non-ASCII always is).
const NOT_IN_LOCATION: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b'\\');

/// A same-site path as a `Location` a browser and Rocket both accept: a
/// `next` such as `/a b` or `/é` passed the safety check but, as it was,
/// made the redirect fail with a 500 after a correct sign-in. Anything
/// that still does not parse goes to `/`.
pub fn location(path: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(path, NOT_IN_LOCATION).to_string();
    match rocket::http::uri::Reference::parse(&encoded) {
        Ok(_) if encoded.starts_with('/') && !encoded.starts_with("//") => encoded,
        _ => "/".to_owned(),
    }
}

/// The request facts every auth endpoint needs, gathered once.
pub struct Ctx<'r> {
    /// Shared state.
    pub sec: &'r Security,
    /// Templates and static files.
    pub assets: &'r super::assets::Assets,
    /// Cookies, to start or end sessions.
    pub cookies: &'r CookieJar<'r>,
    /// The client wants JSON (WIRE.md §2).
    pub json: bool,
    /// The session cookie's contents, if valid and fresh.
    pub session: Option<SessionData>,
    /// The session cookie's contents, even if expired: retired at sign-in.
    previous: Option<SessionData>,
    /// `?include_auth_token` was given (presence is enough).
    pub include_token: bool,
    /// `?next=` from the query.
    pub query_next: Option<String>,
    /// The client address (socket peer, or via trusted proxies).
    pub ip: Option<std::net::IpAddr>,
    /// The browser, as it names itself (for notices).
    pub user_agent: Option<&'r str>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Ctx<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let sec = security(req);
        Outcome::Success(Ctx {
            sec,
            assets: req
                .rocket()
                .state::<super::assets::Assets>()
                .expect("assets are managed at ignite"),
            cookies: req.cookies(),
            json: wants_json(req),
            session: cookies::current(req, sec),
            previous: cookies::previous(req, sec),
            include_token: req.query_fields().any(|f| f.name == "include_auth_token"),
            query_next: req.query_value::<String>("next").and_then(Result::ok),
            ip: super::client_ip::client_ip(req, &sec.config.trusted_proxies),
            user_agent: req.headers().get_one("User-Agent"),
        })
    }
}

impl<'r> Ctx<'r> {
    /// Where this request came from, for notices.
    pub fn origin(&self) -> crate::core::recovery::Origin {
        crate::core::recovery::Origin {
            ip: self.ip,
            user_agent: self.user_agent.map(str::to_owned),
        }
    }

    /// A sign-in from this browser: the new-browser notice when it is on
    /// and the browser never signed in to the account.
    pub async fn note_browser(&self, user: &User) -> Result<(), ApiError> {
        if !self.sec.config.notify_new_browser {
            return Ok(());
        }
        let marks = self
            .cookies
            .get(cookies::BROWSER_MARKS)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        let marks = self.sec.note_browser(user, &marks, &self.origin()).await?;
        cookies::set_browser_marks(self.cookies, &self.sec.config, marks);
        Ok(())
    }

    /// Counts an auth request from this client address.
    pub fn check_ip(&self) -> Result<(), ApiError> {
        Ok(self.sec.check_ip(self.ip)?)
    }

    /// A fresh CSRF token for a page (creating an anonymous session if needed).
    pub fn csrf_token(&self) -> String {
        cookies::page_csrf(self.cookies, self.sec, self.session.as_ref())
    }

    /// The redirect target: the body's `next`, else the query's, validated.
    /// JSON clients get a 400 for a bad one; forms fall back to `/`.
    pub fn next(&self, input: &Input) -> Result<String, ApiError> {
        let body = input.text("next")?;
        let raw = if body.is_empty() {
            self.query_next.as_deref().unwrap_or("")
        } else {
            body
        };
        if raw.is_empty() {
            return Ok("/".into());
        }
        if is_safe_next(raw) {
            Ok(raw.to_owned())
        } else if self.json {
            Err(ApiError::Validation(FieldErrors::one(
                "next",
                msg::BAD_REDIRECT,
            )))
        } else {
            Ok("/".into())
        }
    }

    /// Starts a brand-new session for `user` (fresh id and CSRF secret,
    /// recorded on the server) and sets its cookies. The session this
    /// browser had before (a sign-in while signed in, /verify, a password
    /// change, or one that expired) is retired on the server: its cookie is
    /// gone anyway.
    pub async fn start_session(
        &self,
        user: &User,
        remember: bool,
    ) -> Result<SessionData, ApiError> {
        if let Some(old) = &self.previous {
            self.sec.end_session(old).await?;
        }
        // A new sign-in of the same account in this browser (a
        // re-authentication, a password change) stays the same device.
        let same_device = self
            .previous
            .as_ref()
            .filter(|old| old.uid.as_deref() == Some(user.fs_uniquifier.as_str()))
            .and_then(|old| old.dev.as_deref());
        let data = self
            .sec
            .start_session(user, remember, same_device, &self.origin())
            .await?;
        cookies::set(self.cookies, &self.sec.config, &data);
        Ok(data)
    }

    /// A browser's redirect after a form post, with `result` shown on the
    /// next page.
    pub fn redirect(&self, to: &str, result: Flash) -> Reply {
        flash::set(self.cookies, &self.sec.config, result);
        Reply::Redirect(to.to_owned())
    }

    /// Signs `user` in: a new session, then the envelope (with a token when
    /// asked) or a redirect to `next`.
    pub async fn signed_in(
        &self,
        user: &User,
        remember: bool,
        next: &str,
        mut extra: Map<String, Value>,
        result: Flash,
    ) -> Result<Reply, ApiError> {
        let data = self.start_session(user, remember).await?;
        let paa = data.paa;
        if !self.json {
            return Ok(self.redirect(next, result));
        }
        let mut user_obj = Map::new();
        if self.include_token {
            let device = data.dev.as_deref();
            let token = self.sec.device_token(user, device, paa).await?;
            user_obj.insert("authentication_token".into(), Value::from(token));
            // FS 5.9: a refresh token with the auth token, when on.
            if self.sec.config.refresh_token {
                let refresh = self.sec.new_refresh(user, device).await?;
                self.hand_out_refresh(refresh, &mut user_obj);
            }
        }
        extra.insert("csrf_token".into(), Value::from(data.csrf));
        extra.insert("user".into(), Value::Object(user_obj));
        Ok(Reply::Json(Envelope::ok(extra)))
    }
}

impl Ctx<'_> {
    /// Hands a refresh token to the client as FS does: in its cookie
    /// (`refresh_token_cookie_name`), else in the answer's `user`.
    pub fn hand_out_refresh(&self, token: String, user_obj: &mut Map<String, Value>) {
        if self.sec.config.refresh_token_cookie_name.is_empty() {
            user_obj.insert("refresh_token".into(), Value::from(token));
        } else {
            cookies::set_refresh(self.cookies, &self.sec.config, token);
        }
    }
}

/// Form state handed to the page templates.
#[derive(serde::Serialize, Default)]
pub struct FormView {
    /// Field name -> messages.
    pub errors: Map<String, Value>,
    /// Form-level messages.
    pub form_errors: Vec<String>,
    /// Values to show again (never passwords).
    pub values: Map<String, Value>,
}

impl FormView {
    /// From validation errors and the values to re-display.
    pub fn new(errors: &FieldErrors, values: Map<String, Value>) -> Self {
        let mut by_field = errors.by_field();
        let form_errors = by_field
            .remove("")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        FormView {
            errors: by_field,
            form_errors,
            values,
        }
    }
}

impl Ctx<'_> {
    /// The answer to a flow's error on a form: the outcomes a form shows
    /// (wrong credentials, validation) go next to the fields with the
    /// status FS gives them (200 for a browser page); the others are
    /// errors with their own status.
    pub fn flow_failure(
        &self,
        template: &'static str,
        error: CoreError,
        values: Map<String, Value>,
        user: Option<&User>,
    ) -> Result<Reply, ApiError> {
        match error.field_errors() {
            Some(errors) => self.form_failure(template, Status::Ok, errors, values, user),
            None => Err(error.into()),
        }
    }

    /// A body refused by the CSRF rule or unreadable: a browser sees the
    /// form again (400) with what it typed; a JSON client gets the error.
    pub fn rejected(
        &self,
        template: &'static str,
        rejected: Rejected,
        values: impl FnOnce(Option<&Input>) -> Map<String, Value>,
        user: Option<&User>,
    ) -> Result<Reply, ApiError> {
        match rejected.error {
            ApiError::BadRequest(m) if !self.json => {
                let values = values(rejected.input.as_ref());
                self.form_failure(
                    template,
                    Status::BadRequest,
                    FieldErrors::one("", m),
                    values,
                    user,
                )
            }
            other => Err(other),
        }
    }

    /// A failed form submission: JSON clients get the 400 envelope with
    /// `errors`; browsers get `template` again, with the errors next to the
    /// fields and `values` (never passwords) filled back in.
    pub fn form_failure(
        &self,
        template: &'static str,
        status: Status,
        errors: FieldErrors,
        values: Map<String, Value>,
        user: Option<&User>,
    ) -> Result<Reply, ApiError> {
        if self.json {
            return Err(ApiError::Validation(errors));
        }
        Ok(render(
            self,
            template,
            status,
            FormView::new(&errors, values),
            user,
        ))
    }
}

impl Ctx<'_> {
    /// The GET of a form page: JSON clients get the CSRF token (as FS
    /// answers), browsers the empty form, keeping `?next=`.
    pub fn form_page(&self, template: &'static str, user: Option<&User>) -> Reply {
        if self.json {
            return Reply::Json(Envelope::ok(
                crate::obj! { "csrf_token" => self.csrf_token() },
            ));
        }
        let values = crate::obj! { "next" => self.query_next.clone().unwrap_or_default() };
        let form = FormView::new(&FieldErrors::default(), values);
        render(self, template, Status::Ok, form, user)
    }
}

/// Renders a page with the common context: CSRF token, form state, the
/// signed-in user's email and whether registration is open.
pub fn render(
    ctx: &Ctx<'_>,
    name: &'static str,
    status: Status,
    form: FormView,
    user: Option<&User>,
) -> Reply {
    render_page(ctx, name, status, form, user, ctx.csrf_token())
}

/// [`render`] with a given CSRF token, for a page rendered right after a new
/// session was started (whose cookies must not be overwritten).
pub fn render_page(
    ctx: &Ctx<'_>,
    name: &'static str,
    status: Status,
    form: FormView,
    user: Option<&User>,
    csrf_token: String,
) -> Reply {
    let context = serde_json::json!({
        "csrf_token": csrf_token,
        "form": form,
        "user_email": user.map(|u| u.email.clone()),
        "flash": flash::take(ctx.cookies),
        "registerable": ctx.sec.config.registerable,
        "recoverable": ctx.sec.config.recoverable,
        "change_email": ctx.sec.config.change_email,
    });
    match ctx.assets.render(name, context) {
        Ok(page) => Reply::Page(status, page),
        Err(e) => {
            tracing::error!(template = name, error = %e, "page cannot be rendered");
            Reply::Page(
                Status::InternalServerError,
                super::error::PLAIN_500.to_owned(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn every_safe_next_becomes_a_location() {
        assert_eq!(location("/account?tab=1#x"), "/account?tab=1#x");
        assert_eq!(location("/a b"), "/a%20b");
        assert_eq!(location("/é"), "/%C3%A9");
        assert_eq!(location("/a\"b<c>{d}|e"), "/a%22b%3Cc%3E%7Bd%7D%7Ce");
        assert_eq!(
            location("/\u{ff0f}\u{ff0f}evil.example"),
            "/%EF%BC%8F%EF%BC%8Fevil.example"
        );
        assert_eq!(location("/%2e%2e/x"), "/%2e%2e/x");
    }
}
