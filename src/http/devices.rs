//! Refresh tokens (`/refresh-token`, FS 5.9), devices (`/sessions`) and
//! personal access tokens (`/tokens`): thin adapters over the core's
//! `refresh`, `devices` and `pat` flows.

use rocket::data::Data;
use rocket::{delete, get, post, routes, Request};
use serde_json::{Map, Value};

use super::cookies;
use super::credentials::security;
use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{is_cross_site, AuthUser, AuthedSubmission, Fresh, Rejected};
use super::input::Input;
use super::page::{Ctx, Reply};
use crate::core::FieldErrors;
use crate::obj;

/// The request body of `/refresh-token`, read without the session CSRF
/// rule (FS's `unauth_csrf`: the refresh cookie is SameSite=Strict and the
/// body must be JSON, which no other site can send without CORS), but a
/// request another site's page sent is refused.
pub struct RefreshBody(Input);

#[rocket::async_trait]
impl<'r> rocket::data::FromData<'r> for RefreshBody {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> rocket::data::Outcome<'r, Self> {
        use rocket::outcome::Outcome;
        let sec = security(req);
        if is_cross_site(req, &sec.config) {
            let e = ApiError::CrossSite;
            return Outcome::Error((e.status(), e));
        }
        match Input::read(req, data).await {
            Ok(input) if !input.form => Outcome::Success(RefreshBody(input)),
            Ok(_) => {
                // FS: `abort(400)` unless the request is JSON.
                let e = ApiError::BadRequest("The request body must be JSON.".into());
                Outcome::Error((e.status(), e))
            }
            Err(e) => Outcome::Error((e.status(), e)),
        }
    }
}

/// A new auth token (and the family's next refresh token) for a refresh
/// token from FS's cookie or the body's `refresh_token`.
#[post("/refresh-token", data = "<body>")]
async fn refresh(ctx: Ctx<'_>, body: Result<RefreshBody, ApiError>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let RefreshBody(input) = body?;
    if !ctx.sec.config.refresh_token {
        return Err(ApiError::NotFound);
    }
    let cookie_name = &ctx.sec.config.refresh_token_cookie_name;
    let from_cookie = (!cookie_name.is_empty())
        .then(|| ctx.cookies.get(cookie_name).map(|c| c.value().to_owned()))
        .flatten();
    let token = match from_cookie {
        Some(t) => t,
        None => input.text("refresh_token")?.to_owned(),
    };
    if token.trim().is_empty() {
        return Err(ApiError::Validation(FieldErrors::one(
            "refresh_token",
            "Refresh token not provided",
        )));
    }
    let r = ctx.sec.refresh(&token, &ctx.origin()).await?;
    let mut user = Map::new();
    user.insert("authentication_token".into(), Value::from(r.auth_token));
    ctx.hand_out_refresh(r.refresh_token, &mut user);
    Ok(Reply::Json(Envelope::ok(obj! { "user" => user })))
}

// ---- devices -----------------------------------------------------------------

/// Devices and personal access tokens are managed by a sign-in (session or
/// its token), never by a personal access token, scoped or not.
fn manager(auth: &AuthUser) -> Result<(), ApiError> {
    if auth.pat {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// The user's devices, this one marked.
#[get("/sessions")]
async fn sessions(auth: AuthUser, ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    manager(&auth)?;
    let list = ctx.sec.devices(&auth.user, auth.device.as_deref()).await?;
    Ok(Reply::Json(Envelope::ok(obj! {
        "sessions" => serde_json::to_value(list).unwrap_or_default(),
    })))
}

/// Signs one device out (this one included, if asked).
#[delete("/sessions/<id>")]
async fn sign_out_device(auth: AuthUser, ctx: Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    manager(&auth)?;
    if !ctx.sec.revoke_device(&auth.user, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::Json(Envelope::ok(Map::new())))
}

/// Signs every other device out.
#[delete("/sessions")]
async fn sign_out_others(auth: AuthUser, ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    manager(&auth)?;
    let n = ctx
        .sec
        .revoke_other_devices(&auth.user, auth.device.as_deref())
        .await?;
    Ok(Reply::Json(Envelope::ok(obj! { "signed_out" => n })))
}

/// The account page's "Sign out" next to a device.
#[post("/sessions/<id>/sign-out", data = "<sub>")]
async fn sign_out_device_form(
    ctx: Ctx<'_>,
    id: &str,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let auth = sub.map_err(|r| r.error)?.auth;
    manager(&auth)?;
    if !ctx.sec.revoke_device(&auth.user, id).await? {
        return Err(ApiError::NotFound);
    }
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(Map::new())));
    }
    if auth.device.as_deref() == Some(id) {
        cookies::end(ctx.cookies, &ctx.sec.config);
        return Ok(ctx.redirect("/login", Flash::DeviceSignedOut));
    }
    Ok(ctx.redirect("/account", Flash::DeviceSignedOut))
}

/// The account page's "Sign out all other devices".
#[post("/sessions/sign-out-others", data = "<sub>")]
async fn sign_out_others_form(
    ctx: Ctx<'_>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let auth = sub.map_err(|r| r.error)?.auth;
    manager(&auth)?;
    let n = ctx
        .sec
        .revoke_other_devices(&auth.user, auth.device.as_deref())
        .await?;
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(obj! { "signed_out" => n })));
    }
    Ok(ctx.redirect("/account", Flash::OthersSignedOut))
}

// ---- personal access tokens ----------------------------------------------------

/// The user's personal access tokens.
#[get("/tokens")]
async fn tokens(auth: AuthUser, ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    manager(&auth)?;
    let list = ctx.sec.pats(&auth.user).await?;
    Ok(Reply::Json(Envelope::ok(obj! {
        "tokens" => serde_json::to_value(list).unwrap_or_default(),
    })))
}

/// Makes a personal access token: `name`, `expires_in_days` (default 30),
/// optionally `roles` (a list, or comma-separated in a form). Needs a
/// recent sign-in; the token is shown this once.
#[post("/tokens", data = "<sub>")]
async fn create_token(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let AuthedSubmission { input, auth } = sub.map_err(|r| r.error)?;
    fresh?;
    let name = input.text("name")?;
    let days = input.number("expires_in_days")?.unwrap_or(30).max(0) as u64;
    // A list given, even empty, is the scope (empty: no roles at all).
    let roles = input.list_given("roles")?;
    let scope = roles.as_deref();
    let (view, token) = ctx.sec.create_pat(&auth.user, name, days, scope).await?;
    if !ctx.json {
        return super::verify::account_with(&ctx, &auth, None, Some(token), ctx.csrf_token()).await;
    }
    let mut out = match serde_json::to_value(view) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    out.insert("token".into(), Value::from(token));
    Ok(Reply::Json(Envelope::ok(obj! { "token" => out })))
}

/// Revokes a personal access token.
#[delete("/tokens/<id>")]
async fn revoke_token(auth: AuthUser, ctx: Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    manager(&auth)?;
    if !ctx.sec.revoke_pat(Some(&auth.user), id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::Json(Envelope::ok(Map::new())))
}

/// The account page's "Revoke" next to a token.
#[post("/tokens/<id>/revoke", data = "<sub>")]
async fn revoke_token_form(
    ctx: Ctx<'_>,
    id: &str,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let auth = sub.map_err(|r| r.error)?.auth;
    manager(&auth)?;
    if !ctx.sec.revoke_pat(Some(&auth.user), id).await? {
        return Err(ApiError::NotFound);
    }
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(Map::new())));
    }
    Ok(ctx.redirect("/account", Flash::TokenRevoked))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![
        refresh,
        sessions,
        sign_out_device,
        sign_out_others,
        sign_out_device_form,
        sign_out_others_form,
        tokens,
        create_token,
        revoke_token,
        revoke_token_form
    ]
}
