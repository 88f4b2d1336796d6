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
use super::guards::{AuthedSubmission, Fresh, Rejected, Submission};
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

/// FS's answer to GET `/tf-setup`: what is on and what may be chosen.
fn setup_state(ctx: &Ctx<'_>, user: &crate::db::User) -> Reply {
    let on = crate::core::twofactor::supported(user.tf_primary_method.as_deref());
    let methods: Vec<&str> = if on {
        vec!["disable", "authenticator"]
    } else {
        vec!["authenticator"]
    };
    let method = on.then_some("authenticator");
    Reply::Json(Envelope::ok(obj! {
        "csrf_token" => ctx.csrf_token(),
        "tf_available_methods" => methods,
        "tf_method" => method,
        "tf_phone_number" => serde_json::Value::Null,
        "tf_primary_method" => method,
        "tf_required" => false,
    }))
}

/// Two-factor settings (JSON; FS's `/tf-setup`). A recent sign-in is
/// needed, as for every change of how the account signs in.
#[get("/tf-setup")]
fn setup_page(ctx: Ctx<'_>, fresh: Fresh) -> Result<Reply, ApiError> {
    if !ctx.json {
        return Err(ApiError::NotFound);
    }
    Ok(setup_state(&ctx, &fresh.0.user))
}

/// `{"setup":"authenticator"}` starts an enrolment (the key and the state
/// token that `/tf-setup/<token>` finishes); `{"setup":"disable"}` turns
/// two-factor sign-in off.
#[post("/tf-setup", data = "<sub>")]
async fn setup(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let AuthedSubmission { input, auth } = sub.map_err(|r| r.error)?;
    fresh?;
    match input.text("setup")? {
        "authenticator" => {
            let e = ctx.sec.start_enrolment(&auth.user).await?;
            let grouped: Vec<String> = e
                .b32key
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            Ok(Reply::Json(Envelope::ok(obj! {
                "csrf_token" => ctx.csrf_token(),
                "tf_authr_b32key" => e.b32key.clone(),
                "tf_authr_issuer" => e.issuer,
                "tf_authr_key" => grouped.join("-"),
                "tf_authr_uri" => e.uri,
                "tf_authr_username" => auth.user.email.clone(),
                "tf_method" => "authenticator",
                "tf_primary_method" => "authenticator",
                "tf_state" => "validating_profile",
                "tf_state_token" => e.state_token,
            })))
        }
        "disable" => {
            ctx.sec
                .disable_two_factor(&auth.user, &ctx.origin())
                .await?;
            Ok(Reply::Json(Envelope::ok(obj! {
                "csrf_token" => ctx.csrf_token(),
                "user" => serde_json::Map::new(),
            })))
        }
        _ => Err(ApiError::Validation(FieldErrors::one(
            "setup",
            "Marked method is not valid",
        ))),
    }
}

/// Finishes an enrolment with a first code.
#[post("/tf-setup/<token>", data = "<sub>")]
async fn setup_validate(
    ctx: Ctx<'_>,
    token: &str,
    fresh: Result<Fresh, ApiError>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let AuthedSubmission { input, auth } = sub.map_err(|r| r.error)?;
    fresh?;
    let code = input.text("code")?;
    ctx.sec
        .finish_enrolment(&auth.user, token, code, &ctx.origin())
        .await?;
    Ok(Reply::Json(Envelope::ok(obj! {
        "csrf_token" => ctx.csrf_token(),
        "tf_method" => "authenticator",
        "tf_phone" => serde_json::Value::Null,
        "tf_primary_method" => "authenticator",
    })))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![tf_page, tf_validate, setup_page, setup, setup_validate]
}
