//! `/verify`: re-authentication (FS's /verify) and the account page.
//!
//! A correct password refreshes the primary authentication time: the caller
//! gets a new session and, with `?include_auth_token`, a new token. The
//! account page's "Get an API token" form uses it and shows the token once.

use rocket::http::Status;
use rocket::{get, post, routes};
use serde_json::{Map, Value};

use super::flash::Flash;
use super::{render_page, Ctx, FormView, Reply};
use crate::auth::guards::{AuthUser, Via};
use crate::auth::{password, session_hash};
use crate::db::User;
use crate::error::{msg, ApiError, FieldErrors};
use crate::input::Input;
use crate::obj;

#[get("/verify")]
fn verify_page(ctx: Ctx<'_>, auth: AuthUser) -> Reply {
    ctx.form_page("verify", Some(&auth.user))
}

#[post("/verify", data = "<input>")]
async fn verify(
    ctx: Ctx<'_>,
    auth: AuthUser,
    input: Result<Input, ApiError>,
) -> Result<Reply, ApiError> {
    ctx.sec.check_ip(ctx.ip)?;
    let input = input?;
    let failed =
        |status, errors| ctx.form_failure("verify", status, errors, obj! {}, Some(&auth.user));
    if let Err(m) = ctx.check_csrf_for(&auth, &input) {
        return failed(Status::BadRequest, FieldErrors::one("", m));
    }
    let current = password::normalize(input.text("password")?);
    let next = ctx.next(&input)?;
    if current.is_empty() {
        return failed(
            Status::Ok,
            FieldErrors::one("password", msg::PASSWORD_MISSING),
        );
    }
    if !ctx.sec.confirm_password(&auth.user, &current).await? {
        tracing::info!(
            event = "verify",
            outcome = "failed",
            user_id = auth.user.id,
            "re-authentication refused"
        );
        return failed(
            Status::Ok,
            FieldErrors::one("password", msg::WRONG_PASSWORD),
        );
    }
    tracing::info!(
        event = "verify",
        outcome = "ok",
        user_id = auth.user.id,
        "re-authenticated"
    );
    // A fresh primary authentication: the old session gives way to a new one.
    let remember = match &auth.via {
        Via::Session(old) => {
            if let Some(sid) = old.sid.as_deref() {
                ctx.sec.db.delete_session(&session_hash(sid)).await?;
            }
            old.rem
        }
        Via::Token => false,
    };
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
    let token = ctx.sec.mint_token(&auth.user.fs_uniquifier, data.paa);
    account(&ctx, &auth.user, Some(token), data.csrf).await
}

/// The account page: who you are, your roles, your sign-in history.
async fn account(
    ctx: &Ctx<'_>,
    user: &User,
    token: Option<String>,
    csrf: String,
) -> Result<Reply, ApiError> {
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
    account(&ctx, &auth.user, None, ctx.csrf_token()).await
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![verify_page, verify, account_page]
}
