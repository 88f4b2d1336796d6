//! Request guards. Authorization is visible in a handler's signature:
//! [`TokenUser`], [`SessionUser`], [`AuthUser`], [`BasicUser`],
//! [`RolesRequired`], [`RolesAccepted`], [`PermissionsRequired`],
//! [`PermissionsAccepted`].
//!
//! A guard that cannot authenticate fails with an error outcome (never a
//! forward) and records the reason for the catcher. A database that cannot
//! answer is a 503, never a 401.

use std::marker::PhantomData;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rocket::http::{ContentType, Method};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use rocket::Request;

use super::client_ip::client_ip;
use super::session::{self, SessionData};
use crate::db::{Role, User};
use crate::error::{remember_failure, ApiError};
use crate::Security;

/// How the current request was authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// An auth token (header, Bearer or query parameter).
    Token,
    /// The session cookie.
    Session(SessionData),
}

/// A signed-in user, by session cookie or token. Session-authenticated
/// unsafe requests have passed the CSRF check (or, for forms, will be
/// checked against the body's `csrf_token`).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user, loaded by fs_uniquifier.
    pub user: User,
    /// How they got in.
    pub via: Via,
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

fn security<'r>(req: &'r Request<'_>) -> &'r Security {
    req.rocket()
        .state::<Security>()
        .expect("gatehouse state is managed at ignite")
}

/// The token this request presents, if any: the configured header, then
/// `Authorization: Bearer` (when enabled), then the query parameter (when
/// configured). Presence alone makes the request an API client.
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
    let param = cfg.token_query_param.as_deref()?;
    req.query_value::<&str>(param).and_then(Result::ok)
}

/// Loads an active user by fs_uniquifier. `Ok(None)` for nobody (rotated,
/// deleted or inactive); `Err` only when the database cannot answer.
async fn active_user(sec: &Security, uid: &str) -> Result<Option<User>, ApiError> {
    Ok(sec.db.user_by_uniquifier(uid).await?.filter(|u| u.active))
}

async fn token_user(req: &Request<'_>) -> Result<Option<User>, ApiError> {
    match presented_token(req) {
        Some(token) => user_for_token(security(req), token).await,
        None => Ok(None),
    }
}

/// The active user a token names. A bad, expired or revoked token reads as
/// nobody (`Ok(None)`); `Err` only when the database cannot answer.
pub async fn user_for_token(sec: &Security, token: &str) -> Result<Option<User>, ApiError> {
    match sec.verify_token(token) {
        Ok(uid) => active_user(sec, &uid).await,
        Err(e) => {
            tracing::debug!(reason = %e, "token refused");
            Ok(None)
        }
    }
}

async fn session_user(req: &Request<'_>) -> Result<Option<(User, SessionData)>, ApiError> {
    let sec = security(req);
    let Some(data) = session::current(req, &sec.config) else {
        return Ok(None);
    };
    Ok(sec.session_user(&data).await?.map(|u| (u, data)))
}

/// True for a body that carries its own `csrf_token` field (an HTML form).
pub fn is_form_body(req: &Request<'_>) -> bool {
    req.content_type()
        .is_some_and(|ct| ct == &ContentType::Form || ct.media_type().sub() == "form-data")
}

/// CSRF for session-authenticated unsafe requests (WIRE.md §7): the token
/// must come in a header, or in the body for forms (checked by the handler).
fn session_csrf(req: &Request<'_>, data: &SessionData) -> Result<(), ApiError> {
    let safe = matches!(
        req.method(),
        Method::Get | Method::Head | Method::Options | Method::Trace
    );
    if safe {
        return Ok(());
    }
    match session::csrf_from_headers(req) {
        None if is_form_body(req) => Ok(()),
        presented => session::check_csrf(Some(data), presented).map_err(ApiError::BadRequest),
    }
}

async fn authenticate(req: &Request<'_>) -> Result<AuthUser, ApiError> {
    // A token marks an API client; a bad one is treated exactly like none.
    if let Some(user) = token_user(req).await? {
        return Ok(AuthUser {
            user,
            via: Via::Token,
        });
    }
    if let Some((user, data)) = session_user(req).await? {
        session_csrf(req, &data)?;
        return Ok(AuthUser {
            user,
            via: Via::Session(data),
        });
    }
    Err(ApiError::Unauthenticated { basic: false })
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        // Cached: role guards build on this one without a second lookup.
        let result = req
            .local_cache_async(async { authenticate(req).await })
            .await;
        match result {
            Ok(user) => Outcome::Success(user.clone()),
            Err(e) => fail(req, e.clone()),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for TokenUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match token_user(req).await {
            Ok(Some(user)) => Outcome::Success(TokenUser(user)),
            Ok(None) => fail(req, ApiError::Unauthenticated { basic: false }),
            Err(e) => fail(req, e),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SessionUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match session_user(req).await {
            Ok(Some((user, data))) => match session_csrf(req, &data) {
                Ok(()) => Outcome::Success(SessionUser(user, data)),
                Err(e) => fail(req, e),
            },
            Ok(None) => fail(req, ApiError::Unauthenticated { basic: false }),
            Err(e) => fail(req, e),
        }
    }
}

/// Splits `Authorization: Basic base64(email:password)`.
fn basic_credentials(req: &Request<'_>) -> Option<(String, String)> {
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

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let denied = ApiError::Unauthenticated { basic: true };
        let Some((email, password)) = basic_credentials(req) else {
            return fail(req, denied);
        };
        // Basic checks a password on every call: the same limits as sign-in.
        let sec = security(req);
        if let Err(e) = sec.check_ip(client_ip(req, &sec.config.trusted_proxies)) {
            return fail(req, e);
        }
        match sec.check_password(&email, &password).await {
            Ok(Ok(user)) => Outcome::Success(BasicUser(user)),
            Ok(Err(_)) => fail(req, denied),
            Err(e) => fail(req, e),
        }
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
        impl $crate::auth::guards::NameSet for $name {
            const NAMES: &'static [&'static str] = &[$($n),+];
        }
    };
}

async fn user_with_roles(req: &Request<'_>) -> Result<(AuthUser, Vec<Role>), ApiError> {
    let user = match req.guard::<AuthUser>().await {
        Outcome::Success(u) => u,
        Outcome::Error((_, e)) => return Err(e),
        Outcome::Forward(_) => return Err(ApiError::Unauthenticated { basic: false }),
    };
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
    Ok((user, roles))
}

/// What a role guard tests.
enum Check {
    AllRoles,
    AnyRole,
    AllPermissions,
    AnyPermission,
}

fn passes(check: Check, roles: &[Role], names: &[&str]) -> bool {
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
