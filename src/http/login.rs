//! `/login`, `/logout`, `/logout-everywhere`: thin adapters over the core's
//! sign-in, sign-out and rotation flows.

use rocket::{get, post, routes};
use serde_json::Map;

use super::cookies;
use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{AuthedSubmission, MaybeUser, Rejected, Submission};
use super::input::Input;
use super::page::{Ctx, Reply};
use crate::core::validate::is_safe_next;
use crate::core::{msg, CoreError, FieldErrors};
use crate::obj;

/// What the login form shows again after a failure (never the password).
fn login_values(input: Option<&Input>) -> serde_json::Map<String, serde_json::Value> {
    let text = |k| input.and_then(|i| i.text(k).ok()).unwrap_or_default();
    obj! {
        "email" => text("email"),
        "next" => text("next"),
        "remember" => input.is_some_and(Input::remember),
    }
}

#[get("/login")]
async fn login_page(ctx: Ctx<'_>, who: MaybeUser) -> Result<Reply, ApiError> {
    if ctx.json {
        // Never a token here: tokens only come from a successful POST.
        let mut response = obj! {
            "csrf_token" => ctx.csrf_token(),
            "identity_attributes" => ["email"],
        };
        if who.0.is_some() {
            response.insert("user".into(), serde_json::Value::Object(Map::new()));
        }
        return Ok(Reply::Json(Envelope::ok(response)));
    }
    if who.0.is_some() {
        // As FS: a signed-in browser goes where a sign-in would take it.
        let next = ctx.query_next.as_deref().filter(|n| is_safe_next(n));
        return Ok(Reply::Redirect(next.unwrap_or("/").to_owned()));
    }
    Ok(ctx.form_page("login", None))
}

#[post("/login", data = "<sub>")]
async fn login(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("login", r, login_values, None),
    };
    if sub.auth.is_some() {
        return Err(ApiError::BadRequest(msg::ANONYMOUS_ONLY.into()));
    }
    let input = sub.input;
    let [email, password] = input.texts(["email", "password"])?;
    let next = ctx.next(&input)?;
    // FS's order: the password's error first.
    let mut errors = FieldErrors::default();
    if password.is_empty() {
        errors.add("password", msg::PASSWORD_MISSING);
    }
    if email.trim().is_empty() {
        errors.add("email", msg::EMAIL_MISSING);
    }
    let outcome = match errors.into_result() {
        Ok(()) => {
            let remembered = ctx.cookies.get(cookies::TF_VALIDITY).map(|c| c.value());
            ctx.sec.sign_in(email, password, ctx.ip, remembered).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(user) => {
            ctx.note_browser(&user).await?;
            ctx.signed_in(
                &user,
                input.remember(),
                &next,
                obj! { "tf_required" => false },
                Flash::SignedIn,
            )
            .await
        }
        Err(CoreError::CodeRequired { uid }) => Ok(super::twofactor::code_required(
            &ctx,
            uid,
            input.remember(),
            &next,
        )),
        Err(CoreError::EnrolRequired { uid }) => Ok(super::twofactor::enrol_required(
            &ctx,
            uid,
            input.remember(),
            &next,
        )),
        Err(e) => ctx.flow_failure("login", e, login_values(Some(&input)), None),
    }
}

/// Ends the session in this browser. A signed-in session must prove the
/// request is its own (the CSRF rule of the data guard).
#[post("/logout", data = "<sub>")]
async fn logout(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    // Only the CSRF rule matters here: whoever the caller is, this
    // browser's session ends. Nobody signed in (an expired session, say):
    // there is nothing to protect, so the cookies just go.
    let body_refresh = match sub {
        Ok(s) => s.input.string("refresh_token").map(str::to_owned),
        Err(r) if r.anonymous && matches!(r.error, ApiError::BadRequest(_)) => None,
        Err(r) => return Err(r.error),
    };
    if let Some(data) = &ctx.session {
        ctx.sec.sign_out(data).await?;
    }
    // FS 5.9: a refresh token sent along (its cookie, or the body's
    // `refresh_token`) has its family revoked.
    let cfg = &ctx.sec.config;
    let refresh = (!cfg.refresh_token_cookie_name.is_empty())
        .then(|| ctx.cookies.get(&cfg.refresh_token_cookie_name))
        .flatten()
        .map(|c| c.value().to_owned())
        .or(body_refresh);
    if let Some(token) = refresh {
        ctx.sec.revoke_refresh_token(&token).await?;
        cookies::end_refresh(ctx.cookies, cfg);
    }
    cookies::end(ctx.cookies, &ctx.sec.config);
    if ctx.json {
        Ok(Reply::Json(Envelope::ok(Map::new())))
    } else {
        Ok(ctx.redirect("/", Flash::SignedOut))
    }
}

/// gatehouse: rotates fs_uniquifier, so every session and token of the user
/// dies at once, this one included.
#[post("/logout-everywhere", data = "<sub>")]
async fn logout_everywhere(
    ctx: Ctx<'_>,
    sub: Result<AuthedSubmission, Rejected>,
) -> Result<Reply, ApiError> {
    let sub = sub.map_err(|r| r.error)?;
    ctx.sec
        .sign_out_everywhere(&sub.auth.user)
        .await
        .map_err(|e| match e {
            CoreError::NoSuchUser => ApiError::Unauthenticated { basic: false },
            e => e.into(),
        })?;
    cookies::end(ctx.cookies, &ctx.sec.config);
    if ctx.json {
        Ok(Reply::Json(Envelope::ok(Map::new())))
    } else {
        Ok(ctx.redirect("/login", Flash::SignedOutEverywhere))
    }
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![login_page, login, logout, logout_everywhere]
}
