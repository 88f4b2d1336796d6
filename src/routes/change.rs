//! `/change`: change the password; rotates fs_uniquifier.

use rocket::http::Status;
use rocket::{get, post, routes};

use super::flash::Flash;
use super::{Ctx, Reply};
use crate::auth::guards::{AuthUser, Via};
use crate::auth::password;
use crate::db::User;
use crate::error::{msg, ApiError, FieldErrors};
use crate::input::Input;
use crate::obj;

fn change_failed(
    ctx: &Ctx<'_>,
    status: Status,
    errors: FieldErrors,
    user: &User,
) -> Result<Reply, ApiError> {
    ctx.form_failure("change", status, errors, obj! {}, Some(user))
}

#[get("/change")]
fn change_page(ctx: Ctx<'_>, auth: AuthUser) -> Reply {
    ctx.form_page("change", Some(&auth.user))
}

#[post("/change", data = "<input>")]
async fn change(
    ctx: Ctx<'_>,
    auth: AuthUser,
    input: Result<Input, ApiError>,
) -> Result<Reply, ApiError> {
    ctx.sec.check_ip(ctx.ip)?;
    let input = input?;
    if let Err(m) = ctx.check_csrf_for(&auth, &input) {
        return change_failed(
            &ctx,
            Status::BadRequest,
            FieldErrors::one("", m),
            &auth.user,
        );
    }
    let current = password::normalize(input.text("password")?);
    let new = password::normalize(input.text("new_password")?);
    let confirm = password::normalize(input.text("new_password_confirm")?);

    let mut errors = FieldErrors::default();
    if current.is_empty() {
        errors.add("password", msg::PASSWORD_MISSING);
    }
    if let Some(problem) = password::new_password_problem(&new) {
        errors.add("new_password", problem);
    }
    if confirm != new {
        errors.add("new_password_confirm", msg::CONFIRM_MISMATCH);
    }
    if !errors.is_empty() {
        return change_failed(&ctx, Status::Ok, errors, &auth.user);
    }
    if !ctx.sec.confirm_password(&auth.user, &current).await? {
        return change_failed(
            &ctx,
            Status::Ok,
            FieldErrors::one("password", msg::WRONG_PASSWORD),
            &auth.user,
        );
    }
    if new == current {
        return change_failed(
            &ctx,
            Status::Ok,
            FieldErrors::one("new_password", msg::SAME_PASSWORD),
            &auth.user,
        );
    }
    let hash = ctx.sec.hasher.hash(&new).await?;
    let Some(uid) = ctx
        .sec
        .rotate(auth.user.id, Some(&hash), "password_change")
        .await?
    else {
        return Err(ApiError::Unauthenticated { basic: false });
    };
    let user = User {
        password: Some(hash),
        fs_uniquifier: uid,
        ..auth.user
    };
    let remember = match &auth.via {
        Via::Session(s) => s.rem,
        Via::Token => false,
    };
    ctx.signed_in(
        &user,
        remember,
        "/",
        serde_json::Map::new(),
        Flash::PasswordChanged,
    )
    .await
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![change_page, change]
}
