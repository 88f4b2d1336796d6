//! `/change`: change the password (the core's flow); rotates fs_uniquifier.

use rocket::{get, post, routes};

use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{AuthUser, AuthedSubmission, Rejected};
use super::page::{Ctx, Reply};
use crate::obj;

#[get("/change")]
fn change_page(ctx: Ctx<'_>, auth: AuthUser) -> Reply {
    if ctx.json {
        // FS's keys: whether there is a password to confirm, and the user.
        return Reply::Json(Envelope::ok(obj! {
            "active_password" => auth.user.password.is_some(),
            "csrf_token" => ctx.csrf_token(),
            "user" => serde_json::Map::new(),
        }));
    }
    ctx.form_page("change", Some(&auth.user))
}

#[post("/change", data = "<sub>")]
async fn change(ctx: Ctx<'_>, sub: Result<AuthedSubmission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let AuthedSubmission { input, auth } = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("change", r, |_| obj! {}, None),
    };
    let [current, new, confirm] =
        input.texts(["password", "new_password", "new_password_confirm"])?;
    let changed = ctx
        .sec
        .change_password(
            &auth.user,
            Some(current),
            new,
            Some(confirm),
            "password_change",
            &ctx.origin(),
        )
        .await;
    let user = match changed {
        Ok(user) => user,
        Err(e) => return ctx.flow_failure("change", e, obj! {}, Some(&auth.user)),
    };
    let remember = auth.session().is_some_and(|s| s.rem);
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
