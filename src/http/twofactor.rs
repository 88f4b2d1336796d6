//! Two-factor sign-in with an authenticator (the core's `check_code`):
//! after the right password, `/login` answers FS's `tf_required` and keeps
//! the pending sign-in in this browser's session; `/tf-validate` takes the
//! code and signs in.

use rocket::http::Status;
use rocket::{get, post, routes};

use super::cookies;
use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{Rejected, Submission};
use super::page::{Ctx, Reply};
use crate::core::session::TfPending;
use crate::core::FieldErrors;
use crate::obj;

/// The answer of `/login` when a code is needed: the pending sign-in goes
/// into this browser's (anonymous) session; JSON gets FS's keys, a browser
/// goes to the code page.
pub fn code_required(
    ctx: &Ctx<'_>,
    uid: String,
    remember: bool,
    next: &str,
) -> Result<Reply, ApiError> {
    let mut data = ctx.sec.anonymous_session();
    data.tf = Some(TfPending {
        uid,
        at: ctx.sec.now(),
        rem: remember,
    });
    cookies::set(ctx.cookies, &ctx.sec.config, &data);
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(obj! {
            "csrf_token" => data.csrf,
            "tf_method" => "authenticator",
            "tf_primary_method" => "authenticator",
            "tf_required" => true,
            "tf_state" => "ready",
        })));
    }
    let to = if next == "/" {
        "/tf-validate".to_owned()
    } else {
        format!(
            "/tf-validate?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    Ok(Reply::Redirect(to))
}

#[get("/tf-validate")]
fn tf_page(ctx: Ctx<'_>) -> Reply {
    ctx.form_page("tf_validate", None)
}

/// The code: signs in when it is right.
#[post("/tf-validate", data = "<sub>")]
async fn tf_validate(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("tf_validate", r, |_| obj! {}, None),
    };
    let code = sub.input.text("code")?;
    let next = ctx.next(&sub.input)?;
    let Some(pending) = ctx.session.as_ref().and_then(|s| s.tf.clone()) else {
        return ctx.flow_failure(
            "tf_validate",
            crate::core::CoreError::NoCodeExpected,
            obj! {},
            None,
        );
    };
    if code.trim().is_empty() {
        let missing = FieldErrors::one("code", crate::core::msg::INVALID_CODE);
        return ctx.form_failure("tf_validate", Status::Ok, missing, obj! {}, None);
    }
    match ctx.sec.check_code(&pending.uid, pending.at, code).await {
        Ok(user) => {
            ctx.sec.record_login(&user, ctx.ip).await?;
            ctx.note_browser(&user).await?;
            ctx.signed_in(
                &user,
                pending.rem,
                &next,
                serde_json::Map::new(),
                Flash::SignedIn,
            )
            .await
        }
        Err(e) => ctx.flow_failure("tf_validate", e, obj! {}, None),
    }
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![tf_page, tf_validate]
}
