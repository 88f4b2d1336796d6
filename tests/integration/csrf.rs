//! Item 10: CSRF for forms and for session-authenticated JSON.

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn forms_must_carry_the_matching_csrf_token() {
    let app = app().await;
    app.user("f@example.com").await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let creds = [("email", "f@example.com"), ("password", PASSWORD)];

    let r = b.send(form_body(app.client.post("/login"), &creds)).await;
    assert_eq!(r.status, Status::BadRequest);
    assert!(
        r.text().contains("The CSRF token is missing."),
        "{}",
        r.body
    );
    assert_eq!(
        b.send(accept_json(app.client.get("/api/me"))).await.status,
        Status::Unauthorized
    );

    let mut with_bad = creds.to_vec();
    with_bad.push(("csrf_token", "not-the-token"));
    let r = b
        .send(form_body(app.client.post("/login"), &with_bad))
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.text().contains("The CSRF token is invalid."));

    // A token from another browser's session does not fit this one.
    let mut other = Browser::default();
    other.send(app.client.get("/login")).await;
    let mut foreign = creds.to_vec();
    let theirs = other.xsrf();
    foreign.push(("csrf_token", &theirs));
    let r = b.send(form_body(app.client.post("/login"), &foreign)).await;
    assert_eq!(r.status, Status::BadRequest);

    let mut good = creds.to_vec();
    let mine = b.xsrf();
    good.push(("csrf_token", &mine));
    let r = b.send(form_body(app.client.post("/login"), &good)).await;
    assert_eq!(r.status, Status::Found);
}

#[rocket::async_test]
async fn unauthenticated_json_endpoints_need_json_not_a_simple_type() {
    let app = app().await;
    app.user("j@example.com").await;
    let body = json!({"email": "j@example.com", "password": PASSWORD}).to_string();
    // A cross-site page can send text/plain without a preflight: refused.
    let r = send(accept_json(
        app.client
            .post("/login")
            .header(ContentType::Plain)
            .body(body.clone()),
    ))
    .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), vec!["The CSRF token is missing."]);
    let r = send(accept_json(app.client.post("/login").body(body.clone()))).await;
    assert_eq!(r.status, Status::BadRequest, "no content type");
    let r = send(
        app.client
            .post("/login")
            .header(ContentType::new("application", "vnd.api+json"))
            .body(body),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "application/*+json is JSON");
}

#[rocket::async_test]
async fn session_authenticated_unsafe_requests_need_the_header() {
    let app = app().await;
    app.user("h@example.com").await;
    let mut b = app.browser_login("h@example.com", PASSWORD).await;
    let xsrf = b.xsrf();

    let r = b
        .send(accept_json(app.client.post("/api/articles/1/likes")))
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.body,
        r#"{"meta":{"code":400},"response":{"errors":["The CSRF token is missing."]}}"#
    );
    let r = b
        .send(accept_json(
            app.client
                .post("/api/articles/1/likes")
                .header(Header::new("X-CSRF-Token", "wrong")),
        ))
        .await;
    assert_eq!(r.errors(), vec!["The CSRF token is invalid."]);
    for (article, name) in ["X-XSRF-Token", "X-CSRF-Token", "X-CSRFToken"]
        .iter()
        .enumerate()
    {
        let r = b
            .send(
                app.client
                    .post(format!("/api/articles/{}/likes", article + 10))
                    .header(Header::new(*name, xsrf.clone())),
            )
            .await;
        assert_eq!(r.status, Status::Created, "{name}: {}", r.body);
    }
    // Safe methods need nothing.
    assert_eq!(b.send(app.client.get("/api/me")).await.status, Status::Ok);
}

#[rocket::async_test]
async fn token_requests_skip_csrf_even_with_a_session_cookie() {
    let app = app().await;
    app.user("t@example.com").await;
    let token = app.login_token("t@example.com", PASSWORD).await;
    let mut b = app.browser_login("t@example.com", PASSWORD).await;
    let r = b
        .send(token_header(
            app.client.post("/api/articles/3/likes"),
            &token,
        ))
        .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
}

#[rocket::async_test]
async fn a_cookie_from_before_login_is_useless_after_it() {
    let app = app().await;
    app.user("fix@example.com").await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let before = b.get("session").unwrap().clone();
    let before_csrf = b.xsrf();
    let r = b
        .send(form_body(
            app.client.post("/login"),
            &[
                ("csrf_token", &before_csrf),
                ("email", "fix@example.com"),
                ("password", PASSWORD),
            ],
        ))
        .await;
    assert_eq!(r.status, Status::Found);
    assert_ne!(b.get("session").unwrap().value(), before.value());
    assert_ne!(b.xsrf(), before_csrf);
    // The pre-login (anonymous) cookie does not carry the sign-in.
    let r = send(accept_json(app.client.get("/api/me")).cookie(before)).await;
    assert_eq!(r.status, Status::Unauthorized);
    // And the old CSRF token no longer works for the new session.
    let r = b
        .send(accept_json(
            app.client
                .post("/api/articles/1/likes")
                .header(Header::new("X-XSRF-Token", before_csrf)),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest);
}
