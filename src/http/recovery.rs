//! Account recovery by email, thin over the core's flows (`core::recovery`):
//! `/reset` and `/reset/<token>` (forgot password), `/confirm` and
//! `/confirm/<token>` (confirm the email), `/change-email` and
//! `/change-email/<token>` (change it). A feature that is off answers 404.

use rocket::http::Status;
use rocket::{get, post, routes};
use serde_json::{Map, Value};

use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{AuthedSubmission, Fresh, MaybeUser, Rejected, Submission};
use super::input::Input;
use super::page::{render, Ctx, FormView, Reply};
use crate::core::links::within_text;
use crate::core::recovery::Confirmed;
use crate::core::{CoreError, FieldErrors};
use crate::db::User;
use crate::obj;

fn email_value(input: Option<&Input>) -> Map<String, Value> {
    obj! { "email" => input.and_then(|i| i.text("email").ok()).unwrap_or_default() }
}

/// A browser page with `values` and no errors.
fn page(
    ctx: &Ctx<'_>,
    template: &'static str,
    values: Map<String, Value>,
    user: Option<&User>,
) -> Reply {
    render(
        ctx,
        template,
        Status::Ok,
        FormView::new(&FieldErrors::default(), values),
        user,
    )
}

/// A link that does not work: JSON clients get the 400 envelope; browsers
/// the page where a new one is asked for, with the reason.
fn link_refused(
    ctx: &Ctx<'_>,
    template: &'static str,
    error: CoreError,
    user: Option<&User>,
) -> Result<Reply, ApiError> {
    match error.field_errors() {
        Some(errors) => ctx.form_failure(template, Status::BadRequest, errors, obj! {}, user),
        None => Err(error.into()),
    }
}

// ---- forgot password -------------------------------------------------------

#[get("/reset")]
fn forgot_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.recoverable {
        return Err(ApiError::NotFound);
    }
    Ok(ctx.form_page("forgot", None))
}

/// Asks for a reset link. The same answer whether or not the email has an
/// account (FS's `RETURN_GENERIC_RESPONSES`).
#[post("/reset", data = "<sub>")]
async fn forgot(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.recoverable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("forgot", r, email_value, None),
    };
    let email = sub.input.text("email")?;
    match ctx.sec.request_reset(email).await {
        Ok(_) if ctx.json => Ok(Reply::Json(Envelope::ok(
            obj! { "csrf_token" => ctx.csrf_token() },
        ))),
        Ok(sent) => {
            let within = within_text(ctx.sec.config.reset_password_within);
            Ok(page(
                &ctx,
                "forgot",
                obj! { "sent" => sent, "within" => within },
                None,
            ))
        }
        Err(e) => ctx.flow_failure("forgot", e, email_value(Some(&sub.input)), None),
    }
}

/// The page a reset link opens: the new-password form while the link is
/// good; otherwise why not, and the form that sends a new one.
#[get("/reset/<token>")]
async fn reset_page(ctx: Ctx<'_>, token: &str) -> Result<Reply, ApiError> {
    if !ctx.sec.config.recoverable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    match ctx.sec.reset_link_user(token).await {
        Ok(_) if ctx.json => Ok(Reply::Json(Envelope::ok(
            obj! { "csrf_token" => ctx.csrf_token() },
        ))),
        Ok(link) => Ok(page(
            &ctx,
            "reset",
            obj! { "token" => token, "email" => link.user().email.clone() },
            None,
        )),
        Err(e) => link_refused(&ctx, "forgot", e, None),
    }
}

/// Sets the new password; signs the user in when
/// `auto_login_after_reset` (and the account may sign in).
#[post("/reset/<token>", data = "<sub>")]
async fn reset(
    ctx: Ctx<'_>,
    token: &str,
    sub: Result<Submission, Rejected>,
) -> Result<Reply, ApiError> {
    if !ctx.sec.config.recoverable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    let values = |_: Option<&Input>| obj! { "token" => token };
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("reset", r, values, None),
    };
    let [password, confirm] = sub.input.texts(["password", "password_confirm"])?;
    let link = match ctx.sec.reset_link_user(token).await {
        Ok(link) => link,
        Err(e) => return link_refused(&ctx, "forgot", e, None),
    };
    let email = link.user().email.clone();
    let user = match ctx
        .sec
        .reset_password(link, password, confirm, &ctx.origin())
        .await
    {
        Ok(user) => user,
        Err(e @ CoreError::Link { .. }) => return link_refused(&ctx, "forgot", e, None),
        Err(e) => {
            let values = obj! { "token" => token, "email" => email };
            return ctx.flow_failure("reset", e, values, None);
        }
    };
    let may_sign_in = ctx.sec.config.auto_login_after_reset
        && user.active
        && user.tf_primary_method.as_deref().is_none_or(str::is_empty)
        && !ctx.sec.must_enrol(&user).await?
        && ctx.sec.check_confirmed(&user).await.is_ok();
    if may_sign_in {
        ctx.sec.record_login(&user, ctx.ip).await?;
        return ctx
            .signed_in(
                &user,
                false,
                "/",
                obj! { "tf_required" => false },
                Flash::ResetSignedIn,
            )
            .await;
    }
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(Map::new())));
    }
    Ok(ctx.redirect("/login", Flash::ResetDone))
}

// ---- confirm email ---------------------------------------------------------

#[get("/confirm")]
fn confirm_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.confirmable {
        return Err(ApiError::NotFound);
    }
    Ok(ctx.form_page("confirm", None))
}

/// Sends a new confirmation link; the same answer for any address.
#[post("/confirm", data = "<sub>")]
async fn resend_confirmation(
    ctx: Ctx<'_>,
    sub: Result<Submission, Rejected>,
) -> Result<Reply, ApiError> {
    if !ctx.sec.config.confirmable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("confirm", r, email_value, None),
    };
    let email = sub.input.text("email")?;
    match ctx.sec.request_confirmation(email).await {
        Ok(_) if ctx.json => Ok(Reply::Json(Envelope::ok(
            obj! { "csrf_token" => ctx.csrf_token() },
        ))),
        Ok(sent) => {
            let within = within_text(ctx.sec.config.confirm_email_within);
            Ok(page(
                &ctx,
                "confirm",
                obj! { "sent" => sent, "within" => within },
                None,
            ))
        }
        Err(e) => ctx.flow_failure("confirm", e, email_value(Some(&sub.input)), None),
    }
}

/// Follows a confirmation link.
#[get("/confirm/<token>")]
async fn confirm(ctx: Ctx<'_>, token: &str) -> Result<Reply, ApiError> {
    if !ctx.sec.config.confirmable {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    match ctx.sec.confirm_email(token).await {
        Ok(Confirmed::Now(_)) if ctx.json => Ok(Reply::Json(Envelope::ok(Map::new()))),
        Ok(Confirmed::Already(_)) if ctx.json => Err(ApiError::Validation(FieldErrors::one(
            "",
            crate::core::msg::ALREADY_CONFIRMED,
        ))),
        Ok(Confirmed::Now(_)) => Ok(ctx.redirect("/login", Flash::EmailConfirmed)),
        Ok(Confirmed::Already(_)) => Ok(ctx.redirect("/login", Flash::AlreadyConfirmed)),
        Err(e) => link_refused(&ctx, "confirm", e, None),
    }
}

// ---- change email ----------------------------------------------------------

fn change_answer(ctx: &Ctx<'_>, user: &User) -> Reply {
    Reply::Json(Envelope::ok(obj! {
        "csrf_token" => ctx.csrf_token(),
        "current_email" => user.email.clone(),
        "user" => Map::new(),
    }))
}

#[get("/change-email")]
fn change_email_page(ctx: Ctx<'_>, fresh: Result<Fresh, ApiError>) -> Result<Reply, ApiError> {
    if !ctx.sec.config.change_email {
        return Err(ApiError::NotFound);
    }
    let auth = fresh?.0;
    if ctx.json {
        return Ok(change_answer(&ctx, &auth.user));
    }
    Ok(ctx.form_page("change_email", Some(&auth.user)))
}

/// Asks for a change of address: a link goes to the new one. Only with a
/// recent sign-in (`freshness`): a stolen old session or token must not be
/// able to move the account to another mailbox.
#[post("/change-email", data = "<sub>")]
async fn change_email(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    if !ctx.sec.config.change_email {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    let AuthedSubmission { input, auth } = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("change_email", r, email_value, None),
    };
    fresh?;
    let email = input.text("email")?;
    match ctx.sec.request_email_change(&auth.user, email).await {
        Ok(_) if ctx.json => Ok(change_answer(&ctx, &auth.user)),
        Ok(sent) => {
            let within = within_text(ctx.sec.config.change_email_within);
            Ok(page(
                &ctx,
                "change_email",
                obj! { "sent" => sent, "within" => within },
                Some(&auth.user),
            ))
        }
        Err(e) => ctx.flow_failure(
            "change_email",
            e,
            email_value(Some(&input)),
            Some(&auth.user),
        ),
    }
}

/// Follows a change-of-address link (no sign-in needed: the link is the
/// proof that the new address is theirs).
#[get("/change-email/<token>")]
async fn change_email_confirm(
    ctx: Ctx<'_>,
    token: &str,
    who: MaybeUser,
) -> Result<Reply, ApiError> {
    if !ctx.sec.config.change_email {
        return Err(ApiError::NotFound);
    }
    ctx.check_ip()?;
    match ctx.sec.change_email(token, &ctx.origin()).await {
        Ok(_) if ctx.json => Ok(Reply::Json(Envelope::ok(Map::new()))),
        Ok(_) => {
            let to = if who.0.is_some() {
                "/account"
            } else {
                "/login"
            };
            Ok(ctx.redirect(to, Flash::EmailChanged))
        }
        Err(e) => link_refused(&ctx, "change_email", e, who.0.as_ref().map(|a| &a.user)),
    }
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![
        forgot_page,
        forgot,
        reset_page,
        reset,
        confirm_page,
        resend_confirmation,
        confirm,
        change_email_page,
        change_email,
        change_email_confirm
    ]
}
