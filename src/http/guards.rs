//! Request guards: who the caller is, and the one CSRF rule. Authorization
//! is visible in a handler's signature: [`AuthUser`], [`TokenUser`],
//! [`SessionUser`], [`BasicUser`], [`RolesRequired`], [`RolesAccepted`],
//! [`PermissionsRequired`], [`PermissionsAccepted`], and for handlers that
//! read a body, the data guards [`Submission`] and [`AuthedSubmission`].
//!
//! The CSRF rule lives here and nowhere else: an unsafe request that the
//! session cookie authenticates must come from this site (Origin and
//! Sec-Fetch-Site) and carry the session's CSRF token, in a header, or in
//! the body's `csrf_token` field for the data guards that read a form. A
//! request guard cannot see the body, so [`AuthUser`] takes the header only:
//! a handler cannot forget the check, and a form post to a route without a
//! form reader is refused. A token-authenticated request is an API client
//! and needs neither.
//!
//! A guard that cannot authenticate fails with an error outcome (never a
//! forward) and records the reason for the catcher. A database that cannot
//! answer is a 503, never a 401.

use std::marker::PhantomData;

use rocket::data::{self, Data, FromData};
use rocket::http::Method;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use rocket::Request;

use super::client_ip::client_ip;
use super::cookies;
use super::credentials::{basic_credentials, csrf_from_headers, presented_token, security};
use super::error::{remember_failure, ApiError};
use super::input::Input;
use crate::config::SecurityConfig;
use crate::core::session::{check_csrf, SessionData};
use crate::db::{Role, User};

/// How the current request was authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// An auth token (header, Bearer or query parameter).
    Token,
    /// The session cookie.
    Session(SessionData),
}

/// A signed-in user, by session cookie or token. A session-authenticated
/// unsafe request has passed the CSRF and same-site checks.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user, loaded by fs_uniquifier.
    pub user: User,
    /// How they got in.
    pub via: Via,
    /// The device of this request (its session's, or its token's), if any.
    pub device: Option<String>,
    /// The roles a limited personal access token may use.
    pub scope: Option<Vec<String>>,
    /// Signed in with a personal access token: for APIs, never for managing
    /// the account's devices and tokens.
    pub pat: bool,
    /// The primary authentication time (the session's, or the token's
    /// `fs_paa`), read once with the credential.
    pub paa: f64,
}

impl AuthUser {
    /// The roles this request may use: all of the user's, or, for a
    /// limited personal access token, those in its scope.
    pub fn scoped(&self, roles: Vec<Role>) -> Vec<Role> {
        match &self.scope {
            Some(scope) => roles
                .into_iter()
                .filter(|r| scope.contains(&r.name))
                .collect(),
            None => roles,
        }
    }

    /// The session this user came with, if by cookie.
    pub fn session(&self) -> Option<&SessionData> {
        match &self.via {
            Via::Session(s) => Some(s),
            Via::Token => None,
        }
    }
}

/// A user authenticated by token only.
#[derive(Debug, Clone)]
pub struct TokenUser(pub User);

/// A user authenticated by session cookie only.
#[derive(Debug, Clone)]
pub struct SessionUser(pub User, pub SessionData);

/// A user authenticated by HTTP Basic (`email:password`).
#[derive(Debug, Clone)]
pub struct BasicUser(pub User);

fn fail<T>(req: &Request<'_>, err: ApiError) -> request::Outcome<T, ApiError> {
    remember_failure(req, &err);
    Outcome::Error((err.status(), err))
}

fn is_unsafe(req: &Request<'_>) -> bool {
    !matches!(
        req.method(),
        Method::Get | Method::Head | Method::Options | Method::Trace
    )
}

/// Who this request is, once per request: the token's user if a token
/// names an active one (a bad token is treated exactly like none), else the
/// session's. `Err` only when the database cannot answer.
pub async fn identify(req: &Request<'_>) -> Result<Option<AuthUser>, ApiError> {
    req.local_cache_async(async {
        let sec = security(req);
        if let Some(token) = presented_token(req) {
            if let Some(t) = sec.token_auth(token).await? {
                return Ok(Some(AuthUser {
                    user: t.user,
                    via: Via::Token,
                    device: t.device,
                    scope: t.scope,
                    pat: t.pat,
                    paa: t.paa,
                }));
            }
        }
        let Some(data) = cookies::current(req, sec) else {
            return Ok(None);
        };
        Ok(sec.session_user(&data).await?.map(|user| AuthUser {
            user,
            device: data.dev.clone(),
            scope: None,
            pat: false,
            paa: data.paa,
            via: Via::Session(data),
        }))
    })
    .await
    .clone()
}

/// Whether an Origin is this site: the request's own host (with `https`
/// when cookies are Secure), or one of the configured trusted origins.
/// `null` (sandboxed frames, cross-origin redirects) never is.
fn same_origin(origin: &str, host: Option<&str>, cfg: &SecurityConfig) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if cfg
        .trusted_origins
        .iter()
        .any(|t| t.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = match origin.strip_prefix("https://") {
        Some(a) => Some(a),
        None if !cfg.cookie_secure => origin.strip_prefix("http://"),
        None => None,
    };
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()))
}

/// An unsafe request sent by another site's page: `Sec-Fetch-Site:
/// cross-site`, or an Origin that is not this site.
pub fn is_cross_site(req: &Request<'_>, cfg: &SecurityConfig) -> bool {
    let headers = req.headers();
    if headers
        .get_one("Sec-Fetch-Site")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    // The request's authority as Rocket parsed it (the Host header, or
    // HTTP/2's :authority), else the raw Host header.
    let host = req
        .host()
        .map(|h| h.to_string())
        .or_else(|| headers.get_one("Host").map(str::to_owned));
    headers
        .get_one("Origin")
        .is_some_and(|o| !same_origin(o, host.as_deref(), cfg))
}

/// THE rule for requests that ride on the browser's ambient credentials
/// (the session cookie): unsafe ones must be same-site and carry the CSRF
/// token of `session`, from a header or from `body_csrf` (a form's field).
fn check_cookie_request(
    req: &Request<'_>,
    session: Option<&SessionData>,
    body_csrf: Option<&str>,
) -> Result<(), ApiError> {
    if !is_unsafe(req) {
        return Ok(());
    }
    if is_cross_site(req, &security(req).config) {
        tracing::warn!(event = "csrf", "cross-site request refused");
        return Err(ApiError::CrossSite);
    }
    let presented = csrf_from_headers(req).or(body_csrf);
    check_csrf(session, presented).map_err(|m| ApiError::BadRequest(m.into()))
}

/// The caller, if any, with the CSRF rule applied to a session (header only:
/// a request guard cannot read the body).
async fn authenticate(req: &Request<'_>) -> Result<AuthUser, ApiError> {
    match identify(req).await? {
        Some(user) => {
            if let Via::Session(data) = &user.via {
                check_cookie_request(req, Some(data), None)?;
            }
            Ok(user)
        }
        None => Err(ApiError::Unauthenticated { basic: false }),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match authenticate(req).await {
            Ok(user) => Outcome::Success(user),
            Err(e) => fail(req, e),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for TokenUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        // Token only: the session cookie is not even read.
        let found = match presented_token(req) {
            Some(token) => security(req).token_user(token).await,
            None => Ok(None),
        };
        match found {
            Ok(Some(user)) => Outcome::Success(TokenUser(user)),
            Ok(None) => fail(req, ApiError::Unauthenticated { basic: false }),
            Err(e) => fail(req, e.into()),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SessionUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let sec = security(req);
        let Some(data) = cookies::current(req, sec) else {
            return fail(req, ApiError::Unauthenticated { basic: false });
        };
        match sec.session_user(&data).await {
            Ok(Some(user)) => match check_cookie_request(req, Some(&data), None) {
                Ok(()) => Outcome::Success(SessionUser(user, data)),
                Err(e) => fail(req, e),
            },
            Ok(None) => fail(req, ApiError::Unauthenticated { basic: false }),
            Err(e) => fail(req, e.into()),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let denied = ApiError::Unauthenticated { basic: true };
        let Some((email, password)) = basic_credentials(req) else {
            return fail(req, denied);
        };
        let sec = security(req);
        // Browsers resend Basic credentials by themselves, like cookies.
        if is_unsafe(req) && is_cross_site(req, &sec.config) {
            return fail(req, ApiError::CrossSite);
        }
        // Basic checks a password on every call: the same limits as sign-in.
        if let Err(e) = sec.check_ip(client_ip(req, &sec.config.trusted_proxies)) {
            return fail(req, e.into());
        }
        let checked = match sec.check_password(&email, &password).await {
            Ok(user) => sec.check_confirmed(&user).await.map(|()| user),
            Err(e) => Err(e),
        };
        match checked {
            Ok(user) => Outcome::Success(BasicUser(user)),
            Err(e) if e.field_errors().is_some() => fail(req, denied),
            Err(e) => fail(req, e.into()),
        }
    }
}

/// A request body that passed the CSRF rule, with the caller, if any.
/// Forms need the session's CSRF token (in the `csrf_token` field or a
/// header) whoever sends them: for an anonymous visitor that is what stops
/// login CSRF. A JSON body needs it when the session cookie authenticates
/// the caller. A token-authenticated caller needs none.
#[derive(Debug)]
pub struct Submission {
    /// The parsed body.
    pub input: Input,
    /// Who sent it (token or session), if anyone.
    pub auth: Option<AuthUser>,
}

/// A [`Submission`] from a signed-in caller.
#[derive(Debug)]
pub struct AuthedSubmission {
    /// The parsed body.
    pub input: Input,
    /// Who sent it.
    pub auth: AuthUser,
}

/// Why a body was refused, with the body when it could be read, so a form
/// can be shown again with what the user typed.
#[derive(Debug)]
pub struct Rejected {
    /// What went wrong.
    pub error: ApiError,
    /// The body, when it was readable.
    pub input: Option<Input>,
    /// The CSRF rule refused a caller nobody is signed in as (no live
    /// session, no valid token).
    pub anonymous: bool,
}

impl From<ApiError> for Rejected {
    fn from(error: ApiError) -> Self {
        Rejected {
            error,
            input: None,
            anonymous: false,
        }
    }
}

async fn submission(req: &Request<'_>, data: Data<'_>) -> Result<Submission, Rejected> {
    let input = Input::read(req, data).await?;
    let auth = match identify(req).await {
        Ok(auth) => auth,
        Err(error) => {
            return Err(Rejected {
                error,
                input: Some(input),
                anonymous: false,
            })
        }
    };
    let checked = match &auth {
        Some(AuthUser {
            via: Via::Token, ..
        }) => Ok(()),
        Some(AuthUser {
            via: Via::Session(s),
            ..
        }) => check_cookie_request(req, Some(s), input.csrf_field()),
        None if input.form => check_cookie_request(
            req,
            cookies::current(req, security(req)).as_ref(),
            input.csrf_field(),
        ),
        None => Ok(()),
    };
    match checked {
        Ok(()) => Ok(Submission { input, auth }),
        Err(error) => Err(Rejected {
            error,
            input: Some(input),
            anonymous: auth.is_none(),
        }),
    }
}

fn data_outcome<'r, T>(
    req: &'r Request<'_>,
    result: Result<T, Rejected>,
) -> data::Outcome<'r, T, Rejected> {
    match result {
        Ok(v) => Outcome::Success(v),
        Err(r) => {
            remember_failure(req, &r.error);
            Outcome::Error((r.error.status(), r))
        }
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for Submission {
    type Error = Rejected;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        data_outcome(req, submission(req, data).await)
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for AuthedSubmission {
    type Error = Rejected;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let result = submission(req, data).await.and_then(|s| match s.auth {
            Some(auth) => Ok(AuthedSubmission {
                input: s.input,
                auth,
            }),
            None => Err(Rejected {
                error: ApiError::Unauthenticated { basic: false },
                input: Some(s.input),
                anonymous: true,
            }),
        });
        data_outcome(req, result)
    }
}

/// A fixed set of role (or permission) names, declared with [`role_set!`](crate::role_set).
pub trait NameSet: Send + Sync + 'static {
    /// The names.
    const NAMES: &'static [&'static str];
}

/// Declares a [`NameSet`] type: `role_set!(pub Admin = ["admin"]);`.
#[macro_export]
macro_rules! role_set {
    ($vis:vis $name:ident = [$($n:literal),+ $(,)?]) => {
        #[doc = concat!("Name set: ", $($n, " "),+)]
        $vis struct $name;
        impl $crate::http::guards::NameSet for $name {
            const NAMES: &'static [&'static str] = &[$($n),+];
        }
    };
}

async fn user_with_roles(req: &Request<'_>) -> Result<(AuthUser, Vec<Role>), ApiError> {
    let user = authenticate(req).await?;
    let roles = req
        .local_cache_async(async {
            security(req)
                .db
                .user_roles(user.user.id)
                .await
                .map_err(ApiError::from)
        })
        .await
        .clone()?;
    let roles = user.scoped(roles);
    Ok((user, roles))
}

/// What a role guard tests.
pub(crate) enum Check {
    AllRoles,
    AnyRole,
    AllPermissions,
    AnyPermission,
}

pub(crate) fn passes(check: Check, roles: &[Role], names: &[&str]) -> bool {
    let has_role = |n: &&str| roles.iter().any(|r| r.name == *n);
    let has_perm = |n: &&str| roles.iter().any(|r| r.permission_list().any(|p| p == *n));
    match check {
        Check::AllRoles => names.iter().all(has_role),
        Check::AnyRole => names.iter().any(has_role),
        Check::AllPermissions => names.iter().all(has_perm),
        Check::AnyPermission => names.iter().any(has_perm),
    }
}

async fn role_guard(
    req: &Request<'_>,
    check: Check,
    names: &[&str],
) -> request::Outcome<(AuthUser, Vec<Role>), ApiError> {
    match user_with_roles(req).await {
        Ok((user, roles)) if passes(check, &roles, names) => Outcome::Success((user, roles)),
        Ok(_) => fail(req, ApiError::Forbidden),
        Err(e) => fail(req, e),
    }
}

macro_rules! role_guard_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        pub struct $name<S: NameSet> {
            /// The authenticated user.
            pub user: AuthUser,
            /// All of the user's roles.
            pub roles: Vec<Role>,
            _set: PhantomData<S>,
        }

        #[rocket::async_trait]
        impl<'r, S: NameSet> FromRequest<'r> for $name<S> {
            type Error = ApiError;

            async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
                role_guard(req, $check, S::NAMES).await.map(|(user, roles)| $name {
                    user,
                    roles,
                    _set: PhantomData,
                })
            }
        }
    };
}

role_guard_type!(
    /// Authenticated and holding every role of `S` (FS `roles_required`).
    RolesRequired,
    Check::AllRoles
);
role_guard_type!(
    /// Authenticated and holding at least one role of `S` (FS `roles_accepted`).
    RolesAccepted,
    Check::AnyRole
);
role_guard_type!(
    /// Authenticated and holding every permission of `S` (FS `permissions_required`).
    PermissionsRequired,
    Check::AllPermissions
);
role_guard_type!(
    /// Authenticated and holding at least one permission of `S` (FS `permissions_accepted`).
    PermissionsAccepted,
    Check::AnyPermission
);

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, perms: Option<&str>) -> Role {
        Role {
            id: 1,
            name: name.into(),
            description: None,
            permissions: perms.map(Into::into),
        }
    }

    #[test]
    fn role_and_permission_checks() {
        let roles = vec![role("admin", Some("read, write")), role("editor", None)];
        assert!(passes(Check::AllRoles, &roles, &["admin", "editor"]));
        assert!(!passes(Check::AllRoles, &roles, &["admin", "root"]));
        assert!(passes(Check::AnyRole, &roles, &["root", "editor"]));
        assert!(passes(Check::AllPermissions, &roles, &["read", "write"]));
        assert!(!passes(Check::AllPermissions, &roles, &["read", "delete"]));
        assert!(passes(Check::AnyPermission, &roles, &["delete", "write"]));
        assert!(!passes(Check::AnyPermission, &[], &["read"]));
    }
}

/// The caller if signed in, else nobody: for pages that anyone may see.
/// A session caller's unsafe request gets the same CSRF rule as
/// [`AuthUser`].
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<AuthUser>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MaybeUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match identify(req).await {
            Ok(None) => Outcome::Success(MaybeUser(None)),
            Ok(Some(_)) => match authenticate(req).await {
                Ok(user) => Outcome::Success(MaybeUser(Some(user))),
                Err(e) => fail(req, e),
            },
            Err(e) => fail(req, e),
        }
    }
}

/// A signed-in user whose primary authentication is recent enough for a
/// sensitive change (`security.freshness`, FS's freshness): a session's
/// sign-in or `/verify` time, or the `fs_paa` inside a token. Otherwise
/// [`ApiError::ReauthRequired`].
///
/// It only identifies the caller: the CSRF rule of an unsafe request is
/// its data guard's ([`Submission`], [`AuthedSubmission`]), which reads the
/// form's `csrf_token` too (a header-only check here refused every form).
/// Every unsafe route has one; `tests/integration/csrf_routes.rs` walks
/// the route table to prove it.
#[derive(Debug, Clone)]
pub struct Fresh(pub AuthUser);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Fresh {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let auth = match identify(req).await {
            Ok(Some(auth)) => auth,
            Ok(None) => return fail(req, ApiError::Unauthenticated { basic: false }),
            Err(e) => return fail(req, e),
        };
        if security(req).is_fresh(auth.paa) {
            Outcome::Success(Fresh(auth))
        } else {
            fail(req, ApiError::ReauthRequired)
        }
    }
}

/// The body of a request from a configured service (token introspection):
/// the client proves itself with HTTP Basic before the body is read; no
/// cookie counts, and a cross-site request is refused.
#[derive(Debug)]
pub struct ClientSubmission {
    /// The client id.
    pub client: String,
    /// The parsed body.
    pub input: Input,
}

#[rocket::async_trait]
impl<'r> FromData<'r> for ClientSubmission {
    type Error = Rejected;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let sec = security(req);
        let result = async {
            if is_cross_site(req, &sec.config) {
                return Err(Rejected::from(ApiError::CrossSite));
            }
            let client = match basic_credentials(req) {
                Some((id, secret)) if sec.introspection_client(&id, &secret) => id,
                _ => return Err(ApiError::Unauthenticated { basic: true }.into()),
            };
            let input = Input::read(req, data).await?;
            Ok(ClientSubmission { client, input })
        }
        .await;
        data_outcome(req, result)
    }
}
