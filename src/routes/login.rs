//! `/login`, `/logout`, `/logout-everywhere`.

use rocket::http::Status;
use rocket::{get, post, routes};
use serde_json::Map;

use super::flash::Flash;
use super::{Ctx, Reply};
use crate::auth::guards::AuthUser;
use crate::auth::{session, session_hash, LoginFailure};
use crate::error::{msg, ApiError, FieldErrors};
use crate::input::Input;
use crate::obj;
use crate::response::Envelope;
use crate::validate::MAX_EMAIL_LEN;

/// The login form again with `errors` (JSON clients get the 400 envelope).
fn login_failed(
    ctx: &Ctx<'_>,
    status: Status,
    errors: FieldErrors,
    input: &Input,
) -> Result<Reply, ApiError> {
    let values = obj! {
        "email" => input.text("email").unwrap_or_default(),
        "next" => input.text("next").unwrap_or_default(),
        "remember" => input.remember(),
    };
    ctx.form_failure("login", status, errors, values, None)
}

#[get("/login")]
async fn login_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.session_user().await?;
    if ctx.json {
        // Never a token here: tokens only come from a successful POST.
        let mut response = obj! {
            "csrf_token" => ctx.csrf_token(),
            "identity_attributes" => ["email"],
        };
        if user.is_some() {
            response.insert("user".into(), serde_json::Value::Object(Map::new()));
        }
        return Ok(Reply::Json(Envelope::ok(response)));
    }
    Ok(ctx.form_page("login", user.as_ref()))
}

#[post("/login", data = "<input>")]
async fn login(ctx: Ctx<'_>, input: Result<Input, ApiError>) -> Result<Reply, ApiError> {
    ctx.sec.check_ip(ctx.ip)?;
    let input = input?;
    if let Err(m) = ctx.check_form_csrf(&input) {
        return login_failed(&ctx, Status::BadRequest, FieldErrors::one("", m), &input);
    }
    let email = input.text("email")?;
    let password = input.text("password")?;
    let next = ctx.next(&input)?;
    let mut errors = FieldErrors::default();
    if email.trim().is_empty() {
        errors.add("email", msg::EMAIL_MISSING);
    }
    if password.is_empty() {
        errors.add("password", msg::PASSWORD_MISSING);
    }
    if !errors.is_empty() {
        return login_failed(&ctx, Status::Ok, errors, &input);
    }
    // No account can have such an email: fail at once, no lookup, no hash.
    if email.len() > MAX_EMAIL_LEN || email.chars().any(char::is_control) {
        return login_failed(
            &ctx,
            Status::Ok,
            FieldErrors::one("", msg::LOGIN_FAILED),
            &input,
        );
    }
    match ctx.sec.check_password(email, password).await? {
        Ok(user) => {
            ctx.sec
                .db
                .record_login(user.id, ctx.ip_text().as_deref())
                .await?;
            tracing::info!(
                event = "login",
                outcome = "ok",
                user_id = user.id,
                "signed in"
            );
            ctx.signed_in(
                &user,
                input.remember(),
                &next,
                obj! { "tf_required" => false },
                Flash::SignedIn,
            )
            .await
        }
        Err(failure) => {
            let (message, reason) = match failure {
                LoginFailure::Invalid => (msg::LOGIN_FAILED, "invalid_credentials"),
                LoginFailure::Disabled => (msg::DISABLED, "disabled"),
                LoginFailure::TwoFactorRequired => {
                    (msg::TWO_FACTOR_UNSUPPORTED, "two_factor_required")
                }
            };
            tracing::info!(
                event = "login",
                outcome = "failed",
                reason,
                "sign-in refused"
            );
            login_failed(&ctx, Status::Ok, FieldErrors::one("", message), &input)
        }
    }
}

/// Ends the session in this browser. A signed-in session must prove the
/// request is its own (CSRF header, or the form's field).
#[post("/logout", data = "<input>")]
async fn logout(ctx: Ctx<'_>, input: Result<Input, ApiError>) -> Result<Reply, ApiError> {
    let input = input?;
    let signed_in = ctx.session.as_ref().is_some_and(|s| s.uid.is_some());
    if signed_in && !ctx.has_token() {
        let check = if input.form {
            ctx.check_form_csrf(&input)
        } else {
            session::check_csrf(ctx.session.as_ref(), ctx.csrf_header)
        };
        check.map_err(ApiError::BadRequest)?;
    }
    if let Some(sid) = ctx.session.as_ref().and_then(|s| s.sid.as_deref()) {
        // The record goes: a copy of this cookie cannot sign anyone in again.
        ctx.sec.db.delete_session(&session_hash(sid)).await?;
    }
    session::end(ctx.cookies, &ctx.sec.config);
    if signed_in {
        tracing::info!(event = "logout", "session ended");
    }
    if ctx.json {
        Ok(Reply::Json(Envelope::ok(Map::new())))
    } else {
        Ok(ctx.redirect("/", Flash::SignedOut))
    }
}

/// gatehouse: rotates fs_uniquifier, so every session and token of the user
/// dies at once, this one included.
#[post("/logout-everywhere", data = "<input>")]
async fn logout_everywhere(
    ctx: Ctx<'_>,
    auth: AuthUser,
    input: Result<Input, ApiError>,
) -> Result<Reply, ApiError> {
    let input = input?;
    ctx.check_csrf_for(&auth, &input)
        .map_err(ApiError::BadRequest)?;
    ctx.sec
        .rotate(auth.user.id, None, "logout_everywhere")
        .await?;
    session::end(ctx.cookies, &ctx.sec.config);
    if ctx.json {
        Ok(Reply::Json(Envelope::ok(Map::new())))
    } else {
        Ok(ctx.redirect("/login", Flash::SignedOutEverywhere))
    }
}

#[get("/logout")]
fn logout_get() -> ApiError {
    ApiError::MethodNotAllowed
}

#[get("/logout-everywhere")]
fn logout_everywhere_get() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![
        login_page,
        login,
        logout,
        logout_get,
        logout_everywhere,
        logout_everywhere_get
    ]
}
