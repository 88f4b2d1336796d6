//! Two-factor sign-in (thin adapters over the core's two-factor flows), as
//! Flask-Security serves it: after the right password, `/login` answers
//! `tf_required` and keeps the pending sign-in in this browser's session;
//! `/tf-validate` takes the authenticator's code, `/mf-recovery` a recovery
//! code, `/tf-rescue` asks for help. `/tf-setup` turns it on (page and
//! JSON) or off; `/mf-recovery-codes` makes a set of recovery codes.

use rocket::http::Status;
use rocket::{get, post, routes};
use serde_json::{Map, Value};

use super::cookies;
use super::envelope::Envelope;
use super::error::ApiError;
use super::flash::Flash;
use super::guards::{Fresh, Rejected, Submission};
use super::page::{render, Ctx, FormView, Reply};
use crate::core::mfcodes::RescueOptions;
use crate::core::session::TfPending;
use crate::core::twofactor::Enrolment;
use crate::core::validate::is_safe_next;
use crate::core::{CoreError, FieldErrors};
use crate::db::User;
use crate::obj;

/// Keeps a pending sign-in in this browser's (anonymous) session. A step
/// within one pending sign-in keeps its CSRF token (the page it renders
/// carries it); a new one gets a new token.
fn keep_pending(ctx: &Ctx<'_>, pending: TfPending) -> String {
    let mut data = ctx.sec.anonymous_session();
    if let Some(current) = ctx
        .session
        .as_ref()
        .filter(|s| !s.signed_in() && s.tf.as_ref().is_some_and(|t| t.uid == pending.uid))
    {
        data.csrf = current.csrf.clone();
    }
    data.tf = Some(pending);
    cookies::set(ctx.cookies, &ctx.sec.config, &data);
    data.csrf
}

/// `path` with `?next=` when it goes somewhere else than `/`.
fn with_next(path: &str, next: &str) -> String {
    if next == "/" {
        path.to_owned()
    } else {
        format!(
            "{path}?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        )
    }
}

/// The answer of `/login` when a code is needed: JSON gets FS's keys, a
/// browser goes to the code page.
pub fn code_required(ctx: &Ctx<'_>, uid: String, remember: bool, next: &str) -> Reply {
    pending_answer(ctx, uid, remember, next, false)
}

/// The answer of `/login` when the account must enrol first (a role of its
/// requires two-factor sign-in): FS's `setup_from_login` state; a browser
/// goes to the setup page.
pub fn enrol_required(ctx: &Ctx<'_>, uid: String, remember: bool, next: &str) -> Reply {
    pending_answer(ctx, uid, remember, next, true)
}

fn pending_answer(ctx: &Ctx<'_>, uid: String, remember: bool, next: &str, enrol: bool) -> Reply {
    let csrf = keep_pending(
        ctx,
        TfPending {
            uid,
            at: ctx.sec.now(),
            rem: remember,
            enrol,
            setup: None,
        },
    );
    match (ctx.json, enrol) {
        (true, false) => Reply::Json(Envelope::ok(obj! {
            "csrf_token" => csrf,
            "tf_method" => "authenticator",
            "tf_primary_method" => "authenticator",
            "tf_required" => true,
            "tf_state" => "ready",
        })),
        (true, true) => Reply::Json(Envelope::ok(obj! {
            "csrf_token" => csrf,
            "tf_required" => true,
            "tf_state" => "setup_from_login",
        })),
        (false, false) => Reply::Redirect(with_next("/tf-validate", next)),
        (false, true) => Reply::Redirect(with_next("/tf-setup", next)),
    }
}

/// The sign-in waiting for its code in this browser, if any.
fn pending(ctx: &Ctx<'_>) -> Option<TfPending> {
    ctx.session
        .as_ref()
        .and_then(|s| s.tf.clone())
        .filter(|p| !p.enrol)
}

/// FS's `recovery_options`: where to go without the authenticator.
fn options_json(o: RescueOptions) -> Map<String, Value> {
    let mut m = Map::new();
    if o.help {
        m.insert("help".into(), Value::from("/tf-rescue"));
    }
    if o.recovery_code {
        m.insert("recovery_code".into(), Value::from("/mf-recovery"));
    }
    m
}

/// The code page (or FS's JSON: the CSRF token and `recovery_options`).
fn code_page(ctx: &Ctx<'_>, errors: FieldErrors, o: RescueOptions, status: Status) -> Reply {
    if ctx.json {
        return Reply::Json(Envelope::ok(obj! {
            "csrf_token" => ctx.csrf_token(),
            "recovery_options" => options_json(o),
        }));
    }
    let values = obj! {
        "next" => ctx.query_next.clone().unwrap_or_default(),
        "recovery_code" => o.recovery_code,
        "help" => o.help,
    };
    render(
        ctx,
        "tf_validate",
        status,
        FormView::new(&errors, values),
        None,
    )
}

async fn options(ctx: &Ctx<'_>) -> Result<RescueOptions, ApiError> {
    Ok(match pending(ctx) {
        Some(p) => match ctx.sec.rescue_options(&p.uid, p.at).await {
            Ok(o) => o,
            Err(CoreError::NoCodeExpected) => RescueOptions::default(),
            Err(e) => return Err(e.into()),
        },
        None => RescueOptions::default(),
    })
}

#[get("/tf-validate")]
async fn tf_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    let o = options(&ctx).await?;
    Ok(code_page(&ctx, FieldErrors::default(), o, Status::Ok))
}

/// A form failure on the code page, keeping its options.
async fn code_failure(ctx: &Ctx<'_>, e: CoreError) -> Result<Reply, ApiError> {
    match e.field_errors() {
        Some(errors) if !ctx.json => {
            let o = options(ctx).await?;
            Ok(code_page(ctx, errors, o, Status::Ok))
        }
        _ => ctx.flow_failure("tf_validate", e, obj! {}, None),
    }
}

/// Finishes a two-factor sign-in: tracking, the new-browser notice, the
/// session (or token), and, when asked and allowed, the `tf_validity`
/// cookie that lets this browser skip the code next time.
async fn finish_sign_in(
    ctx: &Ctx<'_>,
    user: &User,
    pending: &TfPending,
    next: &str,
    remember_browser: bool,
    flash: Flash,
) -> Result<Reply, ApiError> {
    ctx.sec.record_login(user, ctx.ip).await?;
    ctx.note_browser(user).await?;
    if remember_browser {
        if let Some(token) = ctx.sec.remember_browser(user, pending.rem) {
            let age = ctx.sec.config.two_factor_login_validity;
            cookies::set_tf_validity(ctx.cookies, &ctx.sec.config, token, age);
        }
    }
    ctx.signed_in(user, pending.rem, next, Map::new(), flash)
        .await
}

/// The code: signs in when it is right. An enrolment started at sign-in
/// (FS's `setup_from_login`) is finished here too, as FS clients do.
#[post("/tf-validate", data = "<sub>")]
async fn tf_validate(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("tf_validate", r, |_| obj! {}, None),
    };
    let code = sub.input.text("code")?;
    let next = ctx.next(&sub.input)?;
    let Some(p) = ctx.session.as_ref().and_then(|s| s.tf.clone()) else {
        return code_failure(&ctx, CoreError::NoCodeExpected).await;
    };
    if code.trim().is_empty() {
        return code_failure(&ctx, CoreError::InvalidCode).await;
    }
    if p.enrol {
        let (Some(token), user) = (p.setup.clone(), ctx.sec.enrolling_user(&p.uid, p.at).await)
        else {
            return code_failure(&ctx, CoreError::NoCodeExpected).await;
        };
        let user = user?;
        return match ctx
            .sec
            .finish_enrolment(&user, &token, code, &ctx.origin())
            .await
        {
            Ok(()) => finish_sign_in(&ctx, &user, &p, &next, true, Flash::TwoFactorOn).await,
            Err(e) => code_failure(&ctx, e).await,
        };
    }
    match ctx.sec.check_code(&p.uid, p.at, code).await {
        Ok(user) => finish_sign_in(&ctx, &user, &p, &next, true, Flash::SignedIn).await,
        Err(e) => code_failure(&ctx, e).await,
    }
}

#[get("/mf-recovery")]
fn recovery_page(ctx: Ctx<'_>) -> Reply {
    ctx.form_page("mf_recovery", None)
}

/// A recovery code instead of the authenticator's: signs in, uses the code
/// up. No `tf_validity` cookie here, as in FS.
#[post("/mf-recovery", data = "<sub>")]
async fn recovery(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("mf_recovery", r, |_| obj! {}, None),
    };
    let code = sub.input.text("code")?;
    let next = ctx.next(&sub.input)?;
    let Some(p) = pending(&ctx) else {
        return ctx.flow_failure("mf_recovery", CoreError::NoCodeExpected, obj! {}, None);
    };
    if code.trim().is_empty() {
        let missing = FieldErrors::one("code", crate::core::msg::INVALID_RECOVERY_CODE);
        return ctx.form_failure("mf_recovery", Status::Ok, missing, obj! {}, None);
    }
    match ctx
        .sec
        .use_recovery_code(&p.uid, p.at, code, &ctx.origin())
        .await
    {
        Ok(user) => finish_sign_in(&ctx, &user, &p, &next, false, Flash::SignedIn).await,
        Err(e) => ctx.flow_failure("mf_recovery", e, obj! {}, None),
    }
}

#[get("/tf-rescue")]
async fn rescue_page(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    if pending(&ctx).is_none() {
        return code_failure(&ctx, CoreError::NoCodeExpected).await;
    }
    tf_page(ctx).await
}

/// FS's rescue: `help_setup` is `recovery_code` (go to `/mf-recovery`) or
/// `help` (a mail to `two_factor_rescue_mail`). FS's third choice, mailing
/// the authenticator's current code, is not offered: it would make the
/// second factor the mailbox, which a password reset already is.
#[post("/tf-rescue", data = "<sub>")]
async fn rescue(ctx: Ctx<'_>, sub: Result<Submission, Rejected>) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) => return ctx.rejected("tf_validate", r, |_| obj! {}, None),
    };
    let Some(p) = pending(&ctx) else {
        return code_failure(&ctx, CoreError::NoCodeExpected).await;
    };
    let o = options(&ctx).await?;
    match sub.input.text("help_setup")? {
        "recovery_code" if o.recovery_code => Ok(Reply::Redirect("/mf-recovery".into())),
        "help" if o.help => {
            ctx.sec
                .two_factor_rescue(&p.uid, p.at, &ctx.origin())
                .await?;
            if ctx.json {
                return Ok(code_page(&ctx, FieldErrors::default(), o, Status::Ok));
            }
            Ok(ctx.redirect("/tf-validate", Flash::RescueSent))
        }
        _ => {
            let e = FieldErrors::one("help_setup", "Not a valid choice.");
            if ctx.json {
                return Err(ApiError::Validation(e));
            }
            Ok(code_page(&ctx, e, o, Status::Ok))
        }
    }
}

/// Who is setting up two-factor sign-in: a signed-in user with a recent
/// sign-in, or a sign-in that must enrol before it completes.
enum Actor {
    SignedIn(User),
    Enrolling(TfPending, User),
}

impl Actor {
    fn user(&self) -> &User {
        match self {
            Actor::SignedIn(u) | Actor::Enrolling(_, u) => u,
        }
    }
}

/// The signed-in caller when there is one; otherwise this browser's sign-in
/// that must enrol, if any.
async fn actor(ctx: &Ctx<'_>, fresh: Result<Fresh, ApiError>) -> Result<Actor, ApiError> {
    let error = match fresh {
        Ok(f) => return Ok(Actor::SignedIn(f.0.user)),
        Err(e) => e,
    };
    match ctx.session.as_ref().and_then(|s| s.tf.clone()) {
        Some(p) if p.enrol && matches!(error, ApiError::Unauthenticated { .. }) => {
            let user = ctx.sec.enrolling_user(&p.uid, p.at).await?;
            Ok(Actor::Enrolling(p, user))
        }
        _ => Err(error),
    }
}

/// FS's answer to GET `/tf-setup`: what is on and what may be chosen
/// (not "disable" when a role requires two-factor sign-in).
fn setup_state(ctx: &Ctx<'_>, user: &User, required: bool) -> Map<String, Value> {
    let on = crate::core::twofactor::supported(user.tf_primary_method.as_deref());
    let methods: Vec<&str> = if on && !required {
        vec!["disable", "authenticator"]
    } else {
        vec!["authenticator"]
    };
    let method = on.then_some("authenticator");
    obj! {
        "csrf_token" => ctx.csrf_token(),
        "tf_available_methods" => methods,
        "tf_method" => method,
        "tf_phone_number" => Value::Null,
        "tf_primary_method" => method,
        "tf_required" => required,
    }
}

/// The setup page: on or off, or an enrolment under way (its QR code, its
/// key as text, the first-code form).
fn setup_page_view(
    ctx: &Ctx<'_>,
    actor: &Actor,
    enrolment: Option<&Enrolment>,
    errors: FieldErrors,
    next: &str,
) -> Result<Reply, ApiError> {
    let user = actor.user();
    let mut values = obj! {
        "on" => crate::core::twofactor::supported(user.tf_primary_method.as_deref()),
        "must" => matches!(actor, Actor::Enrolling(..)),
        "recovery_codes" => ctx.sec.config.recovery_codes,
        "next" => if next == "/" { "" } else { next },
    };
    if let Some(e) = enrolment {
        let qr = qrcode::QrCode::new(e.uri.as_bytes())
            .map_err(|err| ApiError::Internal(format!("QR code: {err}")))?;
        let svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build();
        // Only the <svg> element (no XML declaration) goes into the page.
        let svg = svg
            .find("<svg")
            .map_or(svg.as_str(), |i| &svg[i..])
            .to_owned();
        values.insert("qr_svg".into(), Value::from(svg));
        values.insert("key".into(), Value::from(e.b32key.clone()));
        values.insert("uri".into(), Value::from(e.uri.clone()));
        values.insert("state_token".into(), Value::from(e.state_token.clone()));
    }
    let who = match actor {
        Actor::SignedIn(u) => Some(u),
        Actor::Enrolling(..) => None,
    };
    Ok(render(
        ctx,
        "tf_setup",
        Status::Ok,
        FormView::new(&errors, values),
        who,
    ))
}

/// Two-factor settings: FS's JSON, or the setup page. A recent sign-in is
/// needed, as for every change of how the account signs in.
#[get("/tf-setup")]
async fn setup_page(ctx: Ctx<'_>, fresh: Result<Fresh, ApiError>) -> Result<Reply, ApiError> {
    let actor = actor(&ctx, fresh).await?;
    if ctx.json {
        let required = ctx.sec.two_factor_required(actor.user()).await?;
        return Ok(Reply::Json(Envelope::ok(setup_state(
            &ctx,
            actor.user(),
            required,
        ))));
    }
    let next = ctx.query_next.as_deref().filter(|n| is_safe_next(n));
    setup_page_view(
        &ctx,
        &actor,
        None,
        FieldErrors::default(),
        next.unwrap_or("/"),
    )
}

/// `{"setup":"authenticator"}` starts an enrolment (the key and the state
/// token that `/tf-setup/<token>` finishes); `{"setup":"disable"}` turns
/// two-factor sign-in off.
#[post("/tf-setup", data = "<sub>")]
async fn setup(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    sub: Result<Submission, Rejected>,
) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let actor = actor(&ctx, fresh).await?;
    let sub = sub.map_err(|r| r.error)?;
    match sub.input.text("setup")? {
        "authenticator" => {
            let e = ctx.sec.start_enrolment(actor.user()).await?;
            if let Actor::Enrolling(p, _) = &actor {
                // FS clients finish a sign-in's enrolment at /tf-validate.
                let mut p = p.clone();
                p.setup = Some(e.state_token.clone());
                keep_pending(&ctx, p);
            }
            if !ctx.json {
                let next = ctx.next(&sub.input)?;
                return setup_page_view(&ctx, &actor, Some(&e), FieldErrors::default(), &next);
            }
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
                "tf_authr_username" => actor.user().email.clone(),
                "tf_method" => "authenticator",
                "tf_primary_method" => "authenticator",
                "tf_state" => "validating_profile",
                "tf_state_token" => e.state_token,
            })))
        }
        "disable" => {
            let Actor::SignedIn(user) = &actor else {
                return Err(ApiError::Validation(FieldErrors::one(
                    "setup",
                    "Marked method is not valid",
                )));
            };
            ctx.sec.disable_two_factor(user, &ctx.origin()).await?;
            if !ctx.json {
                return Ok(ctx.redirect("/tf-setup", Flash::TwoFactorOff));
            }
            Ok(Reply::Json(Envelope::ok(obj! {
                "csrf_token" => ctx.csrf_token(),
                "user" => Map::new(),
            })))
        }
        _ => Err(ApiError::Validation(FieldErrors::one(
            "setup",
            "Marked method is not valid",
        ))),
    }
}

/// Finishes an enrolment with a first code. A sign-in that had to enrol
/// is signed in.
#[post("/tf-setup/<token>", data = "<sub>")]
async fn setup_validate(
    ctx: Ctx<'_>,
    token: &str,
    fresh: Result<Fresh, ApiError>,
    sub: Result<Submission, Rejected>,
) -> Result<Reply, ApiError> {
    ctx.check_ip()?;
    let actor = actor(&ctx, fresh).await?;
    let sub = sub.map_err(|r| r.error)?;
    let code = sub.input.text("code")?;
    let next = ctx.next(&sub.input)?;
    let user = actor.user();
    if let Actor::Enrolling(p, _) = &actor {
        // A sign-in's enrolment finishes only the one this browser started.
        if p.setup.as_deref() != Some(token) {
            return Err(CoreError::NoCodeExpected.into());
        }
    }
    if let Err(e) = ctx
        .sec
        .finish_enrolment(user, token, code, &ctx.origin())
        .await
    {
        // A browser sees the same QR code again, with the error.
        let errors = match (&e, ctx.json) {
            (CoreError::InvalidCode, false) => e.field_errors().unwrap_or_default(),
            _ => return Err(e.into()),
        };
        let enrolment = ctx.sec.resume_enrolment(user, token).await?;
        return setup_page_view(&ctx, &actor, Some(&enrolment), errors, &next);
    }
    if let Actor::Enrolling(p, user) = &actor {
        return finish_sign_in(&ctx, user, p, &next, true, Flash::TwoFactorOn).await;
    }
    if !ctx.json {
        return Ok(ctx.redirect("/tf-setup", Flash::TwoFactorOn));
    }
    Ok(Reply::Json(Envelope::ok(obj! {
        "csrf_token" => ctx.csrf_token(),
        "tf_method" => "authenticator",
        "tf_phone" => Value::Null,
        "tf_primary_method" => "authenticator",
    })))
}

/// The recovery codes page; JSON gets the current codes (FS). A recent
/// sign-in is needed: the codes are as good as the second factor.
#[get("/mf-recovery-codes?<show_codes>")]
async fn codes_page(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    show_codes: Option<&str>,
) -> Result<Reply, ApiError> {
    let user = fresh?.0.user;
    let codes = ctx.sec.recovery_codes(&user).await?;
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(obj! {
            "csrf_token" => ctx.csrf_token(),
            "recovery_codes" => codes,
        })));
    }
    let mut errors = FieldErrors::default();
    let shown: Vec<String> = if show_codes.is_some() {
        if codes.is_empty() {
            // FS's NO_RECOVERY_CODES_SETUP.
            errors.add("show_codes", "No recovery codes generated yet");
        }
        codes
    } else {
        Vec::new()
    };
    let values = obj! { "codes" => shown, "fresh_set" => false };
    Ok(render(
        &ctx,
        "mf_recovery_codes",
        Status::Ok,
        FormView::new(&errors, values),
        Some(&user),
    ))
}

/// A new set of recovery codes (the old set stops working), shown once.
#[post("/mf-recovery-codes", data = "<sub>")]
async fn new_codes(
    ctx: Ctx<'_>,
    fresh: Result<Fresh, ApiError>,
    sub: Result<Submission, Rejected>,
) -> Result<Reply, ApiError> {
    let user = fresh?.0.user;
    sub.map_err(|r| r.error)?;
    let codes = ctx.sec.new_recovery_codes(&user).await?;
    if ctx.json {
        return Ok(Reply::Json(Envelope::ok(obj! {
            "csrf_token" => ctx.csrf_token(),
            "recovery_codes" => codes,
        })));
    }
    let values = obj! { "codes" => codes, "fresh_set" => true };
    Ok(render(
        &ctx,
        "mf_recovery_codes",
        Status::Ok,
        FormView::new(&FieldErrors::default(), values),
        Some(&user),
    ))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![
        tf_page,
        tf_validate,
        recovery_page,
        recovery,
        rescue_page,
        rescue,
        setup_page,
        setup,
        setup_validate,
        codes_page,
        new_codes
    ]
}
