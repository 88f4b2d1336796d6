//! Issue 14, items 2 and 3 (first part): an account that enrolled in
//! Flask-Security's authenticator two-factor signs in here with a code
//! from its existing authenticator entry: FS's stored secret (passlib's
//! encrypted TOTP JSON under SECURITY_TOTP_SECRETS), FS's JSON, a code
//! that works once, counted on the account's throttle.

use std::time::Duration;

use rocket::http::Status;
use serde_json::json;

use crate::common::*;
use gatehouse::core::totp::code_at;
use gatehouse::core::twofactor::write_secret;

const KEY: &[u8] = b"two-factor key 12345";

pub fn secrets() -> std::collections::BTreeMap<String, String> {
    let mut s = std::collections::BTreeMap::new();
    s.insert("1".to_owned(), "gatehouse-totp-secret-1".to_owned());
    s
}

/// An app with FS's TOTP secrets and an account enrolled as FS stores it.
pub async fn enrolled(
    tweak: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment,
) -> TestApp {
    let app = app_with(|f| tweak(f.merge(("security.totp_secrets", secrets())))).await;
    let user = app.user("tf@example.com").await;
    let stored = write_secret(KEY, &secrets(), "gatehouse-test");
    crate::on_pool!(&app, p => sqlx::query(
        r#"UPDATE "user" SET tf_primary_method = 'authenticator', tf_totp_secret = $1 WHERE id = $2"#)
        .bind(&stored).bind(user.id).execute(p).await.map(|_| ()).unwrap());
    app
}

pub fn code(app: &TestApp) -> String {
    code_at(KEY, app.sec().now() as u64)
}

pub async fn password_step(app: &TestApp) -> (Browser, Resp) {
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": "tf@example.com", "password": PASSWORD}),
        ))
        .await;
    (b, r)
}

pub async fn code_step(app: &TestApp, b: &mut Browser, code: &str) -> Resp {
    b.send(json_body(
        app.client.post("/tf-validate?include_auth_token"),
        json!({ "code": code }),
    ))
    .await
}

#[rocket::async_test]
async fn the_right_password_then_the_code_signs_in() {
    let app = enrolled(|f| f).await;
    let (mut b, r) = password_step(&app).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let v = r.json()["response"].clone();
    assert_eq!(v["tf_required"], true);
    assert_eq!(v["tf_state"], "ready");
    assert_eq!(v["tf_primary_method"], "authenticator");
    assert!(v.get("user").is_none(), "no token before the code: {v}");
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Unauthorized, "not signed in yet");

    let r = code_step(&app, &mut b, "000000").await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.json()["response"]["field_errors"]["code"][0],
        "Invalid code"
    );

    let r = code_step(&app, &mut b, &code(&app)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = r.token();
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Ok
    );
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Ok, "the session is signed in");
}

#[rocket::async_test]
async fn a_code_works_once_and_only_near_its_time() {
    let app = enrolled(|f| f).await;
    let used = code(&app);
    let (mut b, _) = password_step(&app).await;
    assert_eq!(code_step(&app, &mut b, &used).await.status, Status::Ok);
    // The same code again (FS 5.9.2 would take it): refused.
    let (mut b, _) = password_step(&app).await;
    let r = code_step(&app, &mut b, &used).await;
    assert_eq!(r.errors(), ["Invalid code"]);
    // The next step's code works; one from two steps ago does not.
    app.clock.advance(Duration::from_secs(30));
    let (mut b, _) = password_step(&app).await;
    let old = code_at(KEY, app.sec().now() as u64 - 60);
    assert_eq!(
        code_step(&app, &mut b, &old).await.errors(),
        ["Invalid code"]
    );
    assert_eq!(
        code_step(&app, &mut b, &code(&app)).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn codes_are_throttled_like_passwords() {
    // A long back-off, so real time passing during the test (each code
    // check derives the key: slow in a debug build) grants no attempt.
    let app = enrolled(|f| {
        f.merge(("security.account_limit", 3))
            .merge(("security.account_base_delay", 60))
            .merge(("security.account_max_delay", 60))
    })
    .await;
    let (mut b, _) = password_step(&app).await;
    let mut statuses = Vec::new();
    for guess in ["111111", "222222", "333333", "444444"] {
        statuses.push(code_step(&app, &mut b, guess).await.status.code);
    }
    // The password step counted too, and the right password does not
    // start the count over: knowing it buys no more guesses.
    assert_eq!(
        statuses,
        [400, 400, 429, 429],
        "a six-digit code is not guessed"
    );
    let (_, r) = password_step(&app).await;
    assert_eq!(r.status, Status::TooManyRequests, "{}", r.body);
}

#[rocket::async_test]
async fn the_code_must_follow_the_password_soon_and_in_the_same_browser() {
    let app = enrolled(|f| f).await;
    // No password step in this browser.
    let mut stranger = Browser::default();
    let r = code_step(&app, &mut stranger, &code(&app)).await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        ["You currently do not have permissions to access this page"]
    );
    // Too late.
    let (mut b, _) = password_step(&app).await;
    app.clock.advance(Duration::from_secs(301));
    let r = code_step(&app, &mut b, &code(&app)).await;
    assert_eq!(
        r.errors(),
        ["You currently do not have permissions to access this page"]
    );
    // A wrong password never gets this far.
    let r = app.post_json("/login", wrong("tf@example.com")).await;
    assert_eq!(r.errors(), [gatehouse::core::msg::LOGIN_FAILED]);
}

#[rocket::async_test]
async fn a_browser_is_sent_to_the_code_page() {
    let app = enrolled(|f| f).await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let r = b
        .submit(
            &app.client,
            "/login",
            &[
                ("email", "tf@example.com"),
                ("password", PASSWORD),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/tf-validate?next=%2Faccount");
    let page = b.send(app.client.get("/tf-validate?next=/account")).await;
    assert!(
        page.body.contains(r#"autocomplete="one-time-code""#),
        "{}",
        page.body
    );
    let r = b
        .submit(
            &app.client,
            "/tf-validate",
            &[("code", &code(&app)), ("next", "/account")],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/account");
}

/// A two-factor sign-in from a new browser is announced like any other.
#[rocket::async_test]
async fn a_new_browser_is_announced_after_the_code() {
    let app = enrolled(|f| f.merge(("security.notify_new_browser", true))).await;
    let (mut b, _) = password_step(&app).await;
    assert_eq!(
        code_step(&app, &mut b, &code(&app)).await.status,
        Status::Ok
    );
    crate::mailbox::expect_mail(
        app.mail.path(),
        "tf@example.com",
        "New sign-in to your account",
    )
    .await;
}

/// Starts enrolling the token's account here (POST /tf-setup): the key an
/// app would scan, and the state token that finishes it.
pub async fn start_enrolment_here(app: &TestApp, token: &str) -> (Vec<u8>, String) {
    let r = send(token_header(
        json_body(
            app.client.post("/tf-setup"),
            json!({"setup": "authenticator"}),
        ),
        token,
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let v = r.json()["response"].clone();
    assert!(
        v["tf_authr_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"),
        "{v}"
    );
    let key = gatehouse::core::totp::base32_decode(v["tf_authr_b32key"].as_str().unwrap()).unwrap();
    (key, v["tf_state_token"].as_str().unwrap().to_owned())
}

/// Issue 14, item 1 (the JSON API): enrolling here, FS's way; the first
/// code proves the app has the key; turning it off again.
#[rocket::async_test]
async fn enrolling_and_turning_it_off() {
    let app = app_with(|f| f.merge(("security.totp_secrets", secrets()))).await;
    app.user("new.tf@example.com").await;
    let token = app.login_token("new.tf@example.com", PASSWORD).await;
    let post = |path: &str, body: serde_json::Value| {
        send(token_header(
            json_body(app.client.post(path.to_owned()), body),
            &token,
        ))
    };
    let r = send(accept_json(token_header(
        app.client.get("/tf-setup"),
        &token,
    )))
    .await;
    assert_eq!(
        r.json()["response"]["tf_available_methods"],
        json!(["authenticator"])
    );

    let (key, state) = start_enrolment_here(&app, &token).await;
    // Nothing changed yet.
    app.login_token("new.tf@example.com", PASSWORD).await;

    let r = post(&format!("/tf-setup/{state}"), json!({"code": "000000"})).await;
    assert_eq!(r.errors(), ["Invalid code"]);
    let first = code_at(&key, app.sec().now() as u64);
    let r = post(&format!("/tf-setup/{state}"), json!({"code": first})).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["response"]["tf_primary_method"], "authenticator");
    crate::mailbox::expect_mail(
        app.mail.path(),
        "new.tf@example.com",
        "Two-factor sign-in is on",
    )
    .await;

    // Signing in now takes a code; the enrolment's code cannot be replayed.
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "new.tf@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.json()["response"]["tf_required"], true);
    let r = code_step(&app, &mut b, &first).await;
    assert_eq!(r.errors(), ["Invalid code"], "the enrolment's code is used");
    app.clock.advance(Duration::from_secs(30));
    let r = code_step(&app, &mut b, &code_at(&key, app.sec().now() as u64)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);

    // Off again: the password alone signs in.
    let r = post("/tf-setup", json!({"setup": "disable"})).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    app.login_token("new.tf@example.com", PASSWORD).await;
    crate::mailbox::expect_mail(
        app.mail.path(),
        "new.tf@example.com",
        "Two-factor sign-in is off",
    )
    .await;
    // A state token is no good for anything else, and expires.
    let r = post("/tf-setup/garbage", json!({"code": "123456"})).await;
    assert_eq!(r.status, Status::BadRequest);
}

#[rocket::async_test]
async fn enrolling_needs_the_secrets_and_a_recent_sign_in() {
    let app = app_with(|f| {
        f.merge(("security.freshness", 600)).merge((
            "security.totp_secrets",
            std::collections::BTreeMap::<String, String>::new(),
        ))
    })
    .await;
    app.user("plain@example.com").await;
    let token = app.login_token("plain@example.com", PASSWORD).await;
    let r = send(token_header(
        json_body(
            app.client.post("/tf-setup"),
            json!({"setup": "authenticator"}),
        ),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::BadRequest, "no totp_secrets: {}", r.body);
    app.clock.advance(Duration::from_secs(601));
    let r = send(token_header(
        json_body(app.client.post("/tf-setup"), json!({"setup": "disable"})),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::Unauthorized);
    assert_eq!(r.json()["response"]["reauth_required"], true);
}
