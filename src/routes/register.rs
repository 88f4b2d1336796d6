//! `/register`: create an account and sign in at once.

use rocket::http::Status;
use rocket::{get, post, routes};

use super::flash::Flash;
use super::{Ctx, Reply};
use crate::auth::{new_uniquifier, password};
use crate::error::{msg, ApiError, FieldErrors};
use crate::input::Input;
use crate::obj;
use crate::validate::normalize_email;

fn register_failed(
    ctx: &Ctx<'_>,
    status: Status,
    errors: FieldErrors,
    input: &Input,
) -> Result<Reply, ApiError> {
    let values = obj! {
        "email" => input.text("email").unwrap_or_default(),
        "next" => input.text("next").unwrap_or_default(),
    };
    ctx.form_failure("register", status, errors, values, None)
}

#[get("/register")]
async fn register_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.registerable {
        return Err(ApiError::NotFound);
    }
    if ctx.signed_in_user().await?.is_some() {
        if ctx.json {
            return Err(ApiError::BadRequest(msg::ANONYMOUS_ONLY.into()));
        }
        return Ok(Reply::Redirect("/".into()));
    }
    Ok(ctx.form_page("register", None))
}

#[post("/register", data = "<input>")]
async fn register(ctx: Ctx<'_>, input: Result<Input, ApiError>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.registerable {
        return Err(ApiError::NotFound);
    }
    ctx.sec.check_ip(ctx.ip)?;
    let input = input?;
    if let Err(m) = ctx.check_form_csrf(&input) {
        return register_failed(&ctx, Status::BadRequest, FieldErrors::one("", m), &input);
    }
    if ctx.signed_in_user().await?.is_some() {
        return Err(ApiError::BadRequest(msg::ANONYMOUS_ONLY.into()));
    }
    let raw_email = input.text("email")?;
    let new_password = password::normalize(input.text("password")?);
    let confirm = password::normalize(input.text("password_confirm")?);
    let next = ctx.next(&input)?;

    let mut errors = FieldErrors::default();
    let email = if raw_email.trim().is_empty() {
        errors.add("email", msg::EMAIL_MISSING);
        None
    } else {
        let e = normalize_email(raw_email);
        if e.is_none() {
            errors.add("email", msg::BAD_EMAIL);
        }
        e
    };
    if let Some(problem) = password::new_password_problem(&new_password) {
        errors.add("password", problem);
    }
    if confirm != new_password {
        errors.add("password_confirm", msg::CONFIRM_MISMATCH);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return register_failed(&ctx, Status::Ok, errors, &input);
    };
    ctx.sec
        .throttle(&format!("reg:{}", email.to_lowercase()))
        .await?;
    let taken = || FieldErrors::one("email", msg::email_taken(&email));
    // Cheap check first so an obvious duplicate costs no hash; the unique
    // index still decides races.
    if ctx.sec.db.user_by_email(&email).await?.is_some() {
        return register_failed(&ctx, Status::Ok, taken(), &input);
    }
    let hash = ctx.sec.hasher.hash(&new_password).await?;
    let user = match ctx
        .sec
        .db
        .create_user(&email, Some(&hash), &new_uniquifier())
        .await?
    {
        Ok(user) => user,
        Err(_) => return register_failed(&ctx, Status::Ok, taken(), &input),
    };
    ctx.sec
        .db
        .record_login(user.id, ctx.ip_text().as_deref())
        .await?;
    tracing::info!(
        event = "register",
        outcome = "ok",
        user_id = user.id,
        "registered and signed in"
    );
    ctx.signed_in(
        &user,
        false,
        &next,
        serde_json::Map::new(),
        Flash::Registered,
    )
    .await
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![register_page, register]
}
