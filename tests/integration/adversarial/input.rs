//! Hostile input: caps before work, and data stays data.

use std::time::Instant;

use rocket::http::{ContentType, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn oversized_bodies_are_refused_before_parsing_or_hashing() {
    let app = app().await;
    app.user("cap@example.com").await;
    let token = app.login_token("cap@example.com", PASSWORD).await;
    let before = app.sec().hasher.hash_count();
    // 16 KiB is the cap, for every auth endpoint (the authenticated ones
    // with a real token, so the body is what gets refused).
    for path in ["/login", "/register", "/change", "/verify", "/logout"] {
        let big = format!("{{\"password\":\"{}\"}}", "a".repeat(17 * 1024));
        let r = send(
            token_header(app.client.post(path), &token)
                .header(ContentType::JSON)
                .body(&big),
        )
        .await;
        assert_eq!(r.status, Status::PayloadTooLarge, "{path}: {}", r.body);
    }
    let start = Instant::now();
    let huge = vec![b' '; 4 * 1024 * 1024];
    let r = send(
        app.client
            .post("/login")
            .header(ContentType::JSON)
            .body(huge),
    )
    .await;
    assert_eq!(r.status, Status::PayloadTooLarge);
    assert!(start.elapsed().as_millis() < 1000, "fast");
    assert_eq!(app.sec().hasher.hash_count(), before);
}

#[rocket::async_test]
async fn impossible_credentials_cost_no_hash() {
    let app = app().await;
    let before = app.sec().hasher.hash_count();
    for body in [
        json!({"email": "a@example.com", "password": "p".repeat(129)}),
        json!({"email": "a\r\n@example.com", "password": "whatever1"}),
        json!({"email": format!("{}@example.com", "a".repeat(250)), "password": "whatever1"}),
    ] {
        let r = app.post_json("/login", body).await;
        assert_eq!(r.status, Status::BadRequest);
        assert_eq!(
            r.errors(),
            vec!["Authentication failed - identity or password/passcode invalid"]
        );
    }
    assert_eq!(app.sec().hasher.hash_count(), before);
    for email in [
        "a\r\nBcc: x@example.com",
        &format!("{}@example.com", "a".repeat(250)),
        "a\u{0}@example.com",
    ] {
        let r = app
            .post_json(
                "/register",
                json!({"email": email, "password": "password1", "password_confirm": "password1"}),
            )
            .await;
        assert_eq!(r.errors(), vec!["Invalid email address"], "{email:?}");
    }
}

#[rocket::async_test]
async fn structural_attacks_on_json() {
    let app = app().await;
    for (why, body) in [
        (
            "deep nesting",
            format!("{{\"email\":{}1{}}}", "[".repeat(5_000), "]".repeat(5_000)),
        ),
        (
            "duplicate key",
            r#"{"email":"a@b.co","password":"x","password":"y"}"#.to_owned(),
        ),
        (
            "prototype-ish keys",
            r#"{"__proto__":{"admin":true},"email":"a@b.co","password":"x"}"#.to_owned(),
        ),
        ("array", "[{\"email\":\"a@b.co\"}]".to_owned()),
        ("number", "12".to_owned()),
        ("utf-16", "\u{feff}{}".to_owned()),
    ] {
        let r = send(
            app.client
                .post("/login")
                .header(ContentType::JSON)
                .body(body),
        )
        .await;
        assert!(
            r.status == Status::BadRequest,
            "{why}: {} {}",
            r.status,
            r.body
        );
        assert!(r.status.code < 500);
    }
}

#[rocket::async_test]
async fn sql_metacharacters_everywhere_are_data() {
    let app = app().await;
    let evil = [
        "' OR 1=1 --@example.com",
        "x\"); DROP TABLE \"user\"; --@example.com",
        "a@example.com' UNION SELECT 1 --",
        "%' ; DELETE FROM gh_session; --@x.co",
    ];
    for e in evil {
        let r = app
            .post_json("/login", json!({"email": e, "password": "' OR '1'='1"}))
            .await;
        assert_eq!(r.status, Status::BadRequest, "{e}");
    }
    app.user("safe@example.com").await;
    app.login_token("safe@example.com", PASSWORD).await;
    assert_eq!(
        app.dbh().list_users().await.unwrap().len(),
        1,
        "nothing dropped or added"
    );
    let r = send(accept_json(
        app.client.get("/api/articles/1%20OR%201=1/likes"),
    ))
    .await;
    assert_eq!(r.status, Status::NotFound);
}
