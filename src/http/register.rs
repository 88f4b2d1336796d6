//! `/register`: create an account and sign in at once (the core's register
//! flow, shared with the admin CLI).

use rocket::{get, post, routes};

use super::error::ApiError;
use super::flash::Flash;
use super::guards::{MaybeUser, Rejected, Submission};
use super::input::Input;
use super::page::{Ctx, Reply};
use crate::core::account::NewAccount;
use crate::core::msg;
use crate::obj;

/// What the register form shows again after a failure (never passwords).
fn register_values(input: Option<&Input>) -> serde_json::Map<String, serde_json::Value> {
    let text = |k| input.and_then(|i| i.text(k).ok()).unwrap_or_default();
    obj! {
        "email" => text("email"),
        "next" => text("next"),
    }
}

#[get("/register")]
async fn register_page(ctx: Ctx<'_>, who: MaybeUser) -> Result<Reply, ApiError> {
    if !ctx.sec.config.registerable {
        return Err(ApiError::NotFound);
    }
    if who.0.is_some() {
        if ctx.json {
            return Err(ApiError::BadRequest(msg::ANONYMOUS_ONLY.into()));
        }
        return Ok(Reply::Redirect("/".into()));
    }
    Ok(ctx.form_page("register", None))
}

#[post("/register", data = "<sub>")]
async fn register(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.registerable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("register", r, register_values, None),
    };
    if sub.auth.is_some() {
        return Err(ApiError::BadRequest(msg::ANONYMOUS_ONLY.into()));
    }
    let input = sub.input;
    let [email, password, confirm] = input.texts(["email", "password", "password_confirm"])?;
    let new = NewAccount {
        email,
        password,
        confirm: Some(confirm),
        roles: &[],
    };
    let next = ctx.next(&input)?;
    match ctx.sec.register(new, ctx.ip).await {
        Ok(user) if ctx.sec.config.confirmable => {
            ctx.sec.send_welcome_confirmation(&user).await?;
            if !ctx.sec.confirmation_required() {
                return ctx
                    .signed_in(
                        &user,
                        false,
                        &next,
                        obj! { "tf_required" => false },
                        Flash::Registered,
                    )
                    .await;
            }
            // FS: the account exists, nobody is signed in until the link
            // is followed.
            if ctx.json {
                return Ok(Reply::Json(super::envelope::Envelope::ok(obj! {
                    "csrf_token" => ctx.csrf_token(),
                    "user" => serde_json::Map::new(),
                })));
            }
            Ok(ctx.redirect("/login", Flash::ConfirmationSent))
        }
        Ok(user) => {
            ctx.signed_in(
                &user,
                false,
                &next,
                obj! { "tf_required" => false },
                Flash::Registered,
            )
            .await
        }
        Err(e) => ctx.flow_failure("register", e, register_values(Some(&input)), None),
    }
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![register_page, register]
}
