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

fn secrets() -> std::collections::BTreeMap<String, String> {
    let mut s = std::collections::BTreeMap::new();
    s.insert("1".to_owned(), "gatehouse-totp-secret-1".to_owned());
    s
}

/// An app with FS's TOTP secrets and an account enrolled as FS stores it.
async fn enrolled(
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

fn code(app: &TestApp) -> String {
    code_at(KEY, app.sec().now() as u64)
}

async fn password_step(app: &TestApp) -> (Browser, Resp) {
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": "tf@example.com", "password": PASSWORD}),
        ))
        .await;
    (b, r)
}

async fn code_step(app: &TestApp, b: &mut Browser, code: &str) -> Resp {
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
    let app = enrolled(|f| f.merge(("security.account_limit", 3))).await;
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
