//! /verify (re-authentication) and the account page.

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn verify_by_token_returns_a_new_token() {
    let app = app().await;
    app.user("v@example.com").await;
    let token = app.login_token("v@example.com", PASSWORD).await;
    let verify = |body: serde_json::Value, path: &'static str| {
        let client = &app.client;
        let token = token.clone();
        async move { send(json_body(token_header(client.post(path), &token), body)).await }
    };
    let r = verify(json!({"password": "wrong-password"}), "/verify").await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.json()["response"]["field_errors"],
        json!({"password": ["Invalid password"]})
    );
    let r = verify(json!({}), "/verify").await;
    assert_eq!(r.errors(), vec!["Password not provided"]);
    let r = verify(json!({"password": PASSWORD}), "/verify?include_auth_token").await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let fresh = r.token();
    assert_eq!(
        app.get_with_token("/api/test", &fresh).await.status,
        Status::Ok
    );
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok,
        "re-authentication revokes nothing"
    );
    let r = verify(json!({"password": PASSWORD}), "/verify").await;
    assert_eq!(
        r.json()["response"]["user"],
        json!({}),
        "no token unless asked"
    );
}

#[rocket::async_test]
async fn verify_by_session_needs_csrf_and_replaces_the_session() {
    let app = app().await;
    app.user("s@example.com").await;
    let mut b = app.browser_login("s@example.com", PASSWORD).await;
    let old = b.get("session").unwrap().clone();
    let r = b
        .send(json_body(
            app.client.post("/verify"),
            json!({"password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.errors(), vec!["The CSRF token is missing."]);
    let r = b
        .send(json_body(
            app.client
                .post("/verify")
                .header(Header::new("X-XSRF-Token", b.xsrf())),
            json!({"password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        r.csrf(),
        b.xsrf(),
        "the new CSRF token comes in the body and the cookie"
    );
    assert_eq!(b.send(app.client.get("/api/me")).await.status, Status::Ok);
    let replay = send(accept_json(app.client.get("/api/me")).cookie(old)).await;
    assert_eq!(
        replay.status,
        Status::Unauthorized,
        "the session before re-authentication is ended"
    );
}

#[rocket::async_test]
async fn verify_is_throttled_like_sign_in() {
    let app = app().await;
    app.user("t@example.com").await;
    let token = app.login_token("t@example.com", PASSWORD).await;
    for _ in 0..10 {
        let r = send(json_body(
            token_header(app.client.post("/verify"), &token),
            json!({"password": "wrong-password"}),
        ))
        .await;
        assert_eq!(r.status, Status::BadRequest);
    }
    let before = app.sec().hasher.hash_count();
    let r = send(json_body(
        token_header(app.client.post("/verify"), &token),
        json!({"password": PASSWORD}),
    ))
    .await;
    assert_eq!(r.status, Status::TooManyRequests);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(
        app.sec().hasher.hash_count(),
        before,
        "no hash while backing off"
    );
}

#[rocket::async_test]
async fn the_account_page_shows_the_user_and_gives_a_token_once() {
    let app = app().await;
    app.user_with("acc@example.com", PASSWORD, &["editor"])
        .await;
    let mut b = Browser::default();
    let r = b.send(app.client.get("/account")).await;
    assert_eq!(r.location(), "/login?next=/account");
    app.post_json(
        "/login",
        json!({"email": "acc@example.com", "password": PASSWORD}),
    )
    .await;
    let mut b = app.browser_login("acc@example.com", PASSWORD).await;
    let page = b.send(app.client.get("/account")).await;
    assert_eq!(page.status, Status::Ok);
    let text = page.text();
    assert!(
        text.contains("acc@example.com") && text.contains("editor"),
        "{text}"
    );
    assert!(
        text.contains(r#"<dd id="login-count">2</dd>"#),
        "two sign-ins so far"
    );
    // The first sign-in came from 127.0.0.1 (the test client's peer); the
    // browser's has no address, so it shows as the previous one.
    assert!(text.contains("from 127.0.0.1"), "{text}");
    assert!(text.contains("Get an API token") && text.contains("Sign out everywhere"));

    let wrong = b
        .submit(
            &app.client,
            "/verify?include_auth_token",
            &[("password", "wrong-password")],
        )
        .await;
    assert!(wrong.text().contains("Invalid password"));
    let r = b
        .submit(
            &app.client,
            "/verify?include_auth_token",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let text = r.text();
    let start = text.find(r#"id="api-token""#).expect("the token is shown");
    let token = text[start..]
        .split('>')
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok
    );
    // The page after it carries the new session's CSRF token: its forms work.
    let page_csrf = text
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(page_csrf, b.xsrf());
    let r = b
        .send(form_body(
            app.client.post("/logout-everywhere"),
            &[("csrf_token", &page_csrf)],
        ))
        .await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn verify_counts_against_the_address_limit_before_hashing() {
    let app = app_with(|f| f.merge(("security.ip_limit_per_minute", 3))).await;
    app.user("ip@example.com").await;
    // The sign-in is the address's first auth request of three.
    let token = app.login_token("ip@example.com", PASSWORD).await;
    let verify = || {
        send(
            json_body(
                token_header(app.client.post("/verify"), &token),
                json!({"password": PASSWORD}),
            )
            .remote(peer()),
        )
    };
    assert_eq!(verify().await.status, Status::Ok);
    assert_eq!(verify().await.status, Status::Ok);
    let before = app.sec().hasher.hash_count();
    let r = verify().await;
    assert_eq!(r.status, Status::TooManyRequests, "{}", r.body);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(
        app.sec().hasher.hash_count(),
        before,
        "refused before hashing"
    );
}
