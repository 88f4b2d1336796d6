//! Bad input: always a clear 4xx in the envelope, never a 500 or a panic.

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

fn envelope_status(r: &Resp) -> u16 {
    r.json()["meta"]["code"].as_u64().unwrap() as u16
}

#[rocket::async_test]
async fn malformed_bodies_are_400_in_the_envelope() {
    let app = app().await;
    for (body, why) in [
        ("{not json", "malformed"),
        ("[\"a\"]", "array at top level"),
        ("\"a string\"", "string at top level"),
        ("", "empty"),
        (
            r#"{"email":"a@b.co","email":"c@d.co","password":"x"}"#,
            "duplicate key",
        ),
        ("{\"a\":\u{0}}", "NUL"),
    ] {
        let r = send(
            app.client
                .post("/login")
                .header(ContentType::JSON)
                .body(body),
        )
        .await;
        assert_eq!(r.status, Status::BadRequest, "{why}: {}", r.body);
        assert_eq!(envelope_status(&r), 400, "{why}");
        assert!(!r.errors().is_empty(), "{why}");
    }
    let deep = format!("{{\"email\":{}{}}}", "[".repeat(500), "]".repeat(500));
    let r = send(
        app.client
            .post("/login")
            .header(ContentType::JSON)
            .body(deep),
    )
    .await;
    assert_eq!(r.status, Status::BadRequest);
}

#[rocket::async_test]
async fn non_string_fields_get_the_fs_message() {
    let app = app().await;
    for body in [
        json!({"email": 1, "password": "x"}),
        json!({"email": "a@b.co", "password": ["x"]}),
        json!({"email": {"$ne": ""}, "password": "x"}),
        json!({"email": "a@b.co", "password": true}),
        json!({"email": "a@b.co", "password": "p", "next": 5}),
    ] {
        let r = app.post_json("/login", body.clone()).await;
        assert_eq!(r.status, Status::BadRequest, "{body}");
        assert_eq!(
            r.errors(),
            vec!["Input not appropriate for requested API"],
            "{body}"
        );
    }
    let r = app
        .post_json(
            "/register",
            json!({"email": "a@b.co", "password": 12345678, "password_confirm": 12345678}),
        )
        .await;
    // Every field that is not a string, as FS's form reports them (oracle).
    assert_eq!(
        r.errors(),
        vec![
            "Input not appropriate for requested API",
            "Input not appropriate for requested API"
        ]
    );
}

#[rocket::async_test]
async fn oversized_and_unsupported_bodies() {
    let app = app().await;
    let big = json!({"email": "a@b.co", "password": "x".repeat(20_000)}).to_string();
    let before = app.sec().hasher.hash_count();
    let r = send(
        app.client
            .post("/login")
            .header(ContentType::JSON)
            .body(big),
    )
    .await;
    assert_eq!(r.status, Status::PayloadTooLarge);
    assert_eq!(envelope_status(&r), 413);
    assert_eq!(
        app.sec().hasher.hash_count(),
        before,
        "no hashing for an oversized body"
    );

    let r = send(
        app.client
            .post("/login")
            .header(ContentType::XML)
            .header(Header::new("Accept", "application/json"))
            .body("<a/>"),
    )
    .await;
    assert_eq!(r.status, Status::UnsupportedMediaType);
    assert_eq!(envelope_status(&r), 415);

    let r = send(
        app.client
            .post("/register")
            .header(ContentType::JSON)
            .body("x".repeat(17_000)),
    )
    .await;
    assert_eq!(r.status, Status::PayloadTooLarge);
}

#[rocket::async_test]
async fn sql_metacharacters_are_data() {
    let app = app().await;
    let nasty = "o'brien\"; DROP TABLE \"user\"; --@example.com";
    let r = app
        .post_json(
            "/login",
            json!({"email": nasty, "password": "x' OR '1'='1"}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        vec!["Authentication failed - identity or password/passcode invalid"]
    );
    let r = app
        .post_json("/register", json!({"email": "o'brien@example.com", "password": "pass' --x", "password_confirm": "pass' --x"}))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    app.login_token("O'Brien@example.com", "pass' --x").await;
    assert_eq!(app.dbh().list_users().await.unwrap().len(), 1);
}

#[rocket::async_test]
async fn unknown_routes_and_garbage_headers() {
    let app = app().await;
    let r = send(accept_json(app.client.get("/nope"))).await;
    assert_eq!(r.status, Status::NotFound);
    assert_eq!(envelope_status(&r), 404);
    let r = send(app.client.get("/nope")).await;
    assert_eq!(r.status, Status::NotFound);
    assert!(r.text().contains("<html"));

    for value in [
        "Bearer",
        "Bearer ",
        "Basic",
        "Basic ====",
        "Bearer \u{7f}\u{1}",
        "Token abc",
    ] {
        let r = send(accept_json(
            app.client
                .get("/api/me")
                .header(Header::new("Authorization", value)),
        ))
        .await;
        assert_eq!(r.status, Status::Unauthorized, "{value:?}");
    }
    let r = send(app.client.get("/api/me").header(Header::new(
        "Cookie",
        "session=%%%garbage; XSRF-TOKEN=\u{1}",
    )))
    .await;
    assert_eq!(r.status, Status::Found);
}
