//! Issue 17, item 2: token introspection (RFC 7662) for other services.

use base64::Engine;
use rocket::http::{ContentType, Header, Status};

use crate::common::*;

const SECRET: &str = "a-client-secret-long-enough";

async fn setup() -> TestApp {
    app_with(|f| {
        f.merge((
            "security.introspection_clients",
            vec![serde_json::json!({"id": "svc", "secret": SECRET})],
        ))
    })
    .await
}

fn basic(id: &str, secret: &str) -> Header<'static> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    Header::new("Authorization", format!("Basic {b64}"))
}

async fn introspect(app: &TestApp, auth: Option<Header<'static>>, token: &str) -> Resp {
    let mut req = app
        .client
        .post("/introspect")
        .header(ContentType::Form)
        .body(format!("token={}&token_type_hint=access_token", enc(token)));
    if let Some(h) = auth {
        req = req.header(h);
    }
    send(req).await
}

#[rocket::async_test]
async fn an_active_token_says_who_and_until_when() {
    let app = setup().await;
    let user = app
        .user_with("svc@example.com", PASSWORD, &["editor", "viewer"])
        .await;
    let token = app.login_token("svc@example.com", PASSWORD).await;
    let r = introspect(&app, Some(basic("svc", SECRET)), &token).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let v = r.json();
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], user.id.to_string());
    assert_eq!(v["username"], "svc@example.com");
    assert_eq!(v["scope"], "editor viewer");
    let (iat, exp) = (v["iat"].as_u64().unwrap(), v["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 86_400);
    assert!(iat.abs_diff(app.sec().now() as u64) < 5);
}

#[rocket::async_test]
async fn anything_not_active_is_inactive_and_nothing_more() {
    let app = setup().await;
    let u = app.user("gone@example.com").await;
    let revoked = app.login_token("gone@example.com", PASSWORD).await;
    send(token_header(
        app.client.post("/logout-everywhere"),
        &revoked,
    ))
    .await;
    let deactivated = app.login_token("gone@example.com", PASSWORD).await;
    app.dbh().set_active(u.id, false).await.unwrap();
    // Dated a day and a second ago: only this one is expired.
    let old_user = app.user("old@example.com").await;
    let now = app.sec().now() as u64;
    let old = app
        .sec()
        .signer
        .mint(&old_user.fs_uniquifier, 0.0, now - 86_401);
    let fresh = app
        .sec()
        .signer
        .mint(&old_user.fs_uniquifier, 0.0, now - 86_000);
    let r = introspect(&app, Some(basic("svc", SECRET)), &fresh).await;
    assert_eq!(
        r.json()["active"],
        true,
        "the same user's unexpired token is active"
    );
    let foreign = gatehouse::core::token::TokenSigner::new(
        &secrecy::SecretString::from("another-secret-key"),
        "remember-salt",
    )
    .mint(&u.fs_uniquifier, 0.0, app.sec().now() as u64);
    for token in [
        revoked.as_str(),
        deactivated.as_str(),
        old.as_str(),
        foreign.as_str(),
        "garbage",
        "",
    ] {
        let r = introspect(&app, Some(basic("svc", SECRET)), token).await;
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.body, r#"{"active":false}"#, "{token}");
    }
}

#[rocket::async_test]
async fn only_a_configured_client_may_ask() {
    let app = setup().await;
    app.user("c@example.com").await;
    let token = app.login_token("c@example.com", PASSWORD).await;
    for auth in [
        None,
        Some(basic("svc", "wrong-secret-of-some-length")),
        Some(basic("other", SECRET)),
    ] {
        let r = introspect(&app, auth, &token).await;
        assert_eq!(r.status, Status::Unauthorized);
        assert_eq!(r.body, r#"{"error":"invalid_client"}"#);
        assert!(r.header("WWW-Authenticate").is_some());
    }
    // The token itself is no client credential, and no client means no one.
    let r = send(token_header(
        app.client
            .post("/introspect")
            .header(ContentType::Form)
            .body(format!("token={}", enc(&token))),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::Unauthorized);
    let plain = app_with(|f| f).await;
    let r = introspect(&plain, Some(basic("svc", SECRET)), &token).await;
    assert_eq!(r.status, Status::Unauthorized, "no clients configured");
}

/// A request without a token is RFC 6749's invalid_request, not an
/// inactive answer (it asked nothing).
#[rocket::async_test]
async fn a_request_without_a_token_is_invalid() {
    let app = setup().await;
    for body in ["token_type_hint=access_token", ""] {
        let r = send(
            app.client
                .post("/introspect")
                .header(ContentType::Form)
                .header(basic("svc", SECRET))
                .body(body),
        )
        .await;
        assert_eq!(r.status, Status::BadRequest, "{body:?}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request");
    }
    for body in [r#"{"token": 42}"#, "[null]", "{"] {
        let r = send(
            app.client
                .post("/introspect")
                .header(ContentType::JSON)
                .header(basic("svc", SECRET))
                .body(body),
        )
        .await;
        assert_eq!(r.status, Status::BadRequest, "{body}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{body}");
    }
    let r = send(
        app.client
            .post("/introspect")
            .header(ContentType::JSON)
            .header(basic("svc", SECRET))
            .body(r#"{"token": 42}"#),
    )
    .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request");
    // An unknown client still learns nothing more than 401.
    let r = introspect(&app, Some(basic("svc", "wrong-secret-0123456789")), "").await;
    assert_eq!(r.status, Status::Unauthorized);
}
