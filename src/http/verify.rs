//! `/verify`: re-authentication (FS's /verify) and the account page.
//!
//! A correct password refreshes the primary authentication time: the caller
//! gets a new session and, with `?include_auth_token`, a new token. The
//! account page's "Get an API token" form uses it and shows the token once.

use rocket::http::Status;
use rocket::{get, post, routes};
use serde_json::{Map, Value};

use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{AuthUser, AuthedSubmission, Rejected};
use super::page::{render_page, Ctx, FormView, Reply};
use crate::core::FieldErrors;
use crate::db::User;
use crate::obj;

#[get("/verify")]
fn verify_page(ctx: Ctx<'_>, auth: AuthUser) -> Reply {
    if ctx.json {
        // FS's keys; gatehouse has no passkeys or OAuth (yet).
        return Reply::Json(Envelope::ok(obj! {
            "csrf_token" => ctx.csrf_token(),
            "has_webauthn_verify_credential" => false,
            "oauth_enabled" => false,
            "oauth_providers" => Vec::<String>::new(),
            "user" => serde_json::Map::new(),
        }));
    }
    ctx.form_page("verify", Some(&auth.user))
}

#[post("/verify", data = "<sub>")]
async fn verify(ctx: Ctx<'_>, sub: Result<AuthedSubmission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let AuthedSubmission { input, auth } = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("verify", r, |_| obj! {}, None),
    };
    let password = input.text("password")?;
    let next = ctx.next(&input)?;
    if let Err(e) = ctx.sec.verify(&auth.user, password).await {
        return ctx.flow_failure("verify", e, obj! {}, Some(&auth.user));
    }
    // A fresh primary authentication: the old session gives way to a new
    // one (start_session retires this browser's previous record).
    let remember = auth.session().is_some_and(|old| old.rem);
    if ctx.json || !ctx.include_token {
        return ctx
            .signed_in(
                &auth.user,
                remember,
                &next,
                Map::new(),
                Flash::Reauthenticated,
            )
            .await;
    }
    // The account page's "Get an API token" form: show the new token once,
    // on a page that carries the new session's CSRF token.
    let data = ctx.start_session(&auth.user, remember).await?;
    let token = ctx
        .sec
        .device_token(&auth.user, data.dev.as_deref(), data.paa)
        .await?;
    let auth = AuthUser {
        device: data.dev.clone(),
        ..auth
    };
    account_with(&ctx, &auth, Some(token), None, data.csrf).await
}

/// The account page: who you are, your roles, your sign-in history, your
/// devices and personal access tokens; a new token (`token`, or a new
/// personal access token `pat`) is shown this once.
pub async fn account_with(
    ctx: &Ctx<'_>,
    auth: &AuthUser,
    token: Option<String>,
    pat: Option<String>,
    csrf: String,
) -> Result<Reply, ApiError> {
    let user: &User = &auth.user;
    let roles: Vec<String> = ctx
        .sec
        .db
        .user_roles(user.id)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let t = ctx
        .sec
        .db
        .tracking(user.id)
        .await?
        .ok_or(ApiError::Unauthenticated { basic: false })?;
    let time = |v: Option<crate::db::DbTime>| {
        v.map_or(Value::Null, |t| {
            Value::from(format!("{} UTC", &t.to_fs_string()[..19]))
        })
    };
    let values = obj! {
        "roles" => roles,
        "login_count" => t.login_count.unwrap_or(0),
        "current_login_at" => time(t.current_login_at),
        "last_login_at" => time(t.last_login_at),
        "current_login_ip" => t.current_login_ip,
        "last_login_ip" => t.last_login_ip,
        "token" => token,
        "pat" => pat,
        "devices" => serde_json::to_value(ctx.sec.devices(user, auth.device.as_deref()).await?)
            .unwrap_or_default(),
        "pats" => serde_json::to_value(ctx.sec.pats(user).await?).unwrap_or_default(),
        "now" => ctx.sec.now(),
    };
    let form = FormView::new(&FieldErrors::default(), values);
    Ok(render_page(
        ctx,
        "account",
        Status::Ok,
        form,
        Some(user),
        csrf,
    ))
}

#[get("/account")]
async fn account_page(ctx: Ctx<'_>, auth: AuthUser) -> Result<Reply, ApiError> {
    account_with(&ctx, &auth, None, None, ctx.csrf_token()).await
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![verify_page, verify, account_page]
}
