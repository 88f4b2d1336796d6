//! Session cookies, CSRF and response headers.

use rocket::http::{Cookie, Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn a_logged_out_cookie_cannot_be_replayed() {
    let app = app().await;
    app.user("replay@example.com").await;
    let mut b = app.browser_login("replay@example.com", PASSWORD).await;
    let stolen = b.get("session").unwrap().clone();
    let r = b
        .send(accept_json(
            app.client
                .post("/logout")
                .header(Header::new("X-XSRF-Token", b.xsrf())),
        ))
        .await;
    assert_eq!(r.status, Status::Ok);
    let r = send(accept_json(app.client.get("/api/me")).cookie(stolen)).await;
    assert_eq!(
        r.status,
        Status::Unauthorized,
        "the copy of the cookie is dead too"
    );
}

#[rocket::async_test]
async fn tampered_or_foreign_cookies_are_anonymous() {
    let app = app().await;
    app.user("tamper@example.com").await;
    let b = app.browser_login("tamper@example.com", PASSWORD).await;
    let value = b.get("session").unwrap().value().to_owned();
    let mut bytes = value.into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = Cookie::new("session", String::from_utf8(bytes).unwrap());
    assert_eq!(
        send(accept_json(app.client.get("/api/me")).cookie(tampered))
            .await
            .status,
        Status::Unauthorized
    );
    // A cookie made with another Rocket key (another deployment) is nothing here.
    let other = client_on(&app.db.url, |f| {
        f.merge(("secret_key", "fJ4lqSLyPjx2n+MgRtmGF3rmmHmeltH5vjdo6T9ZdXY="))
    })
    .await;
    let r = send(json_body(
        other.post("/login"),
        json!({"email": "tamper@example.com", "password": PASSWORD}),
    ))
    .await;
    let foreign = r.cookie("session").unwrap().clone();
    assert_eq!(
        send(accept_json(app.client.get("/api/me")).cookie(foreign))
            .await
            .status,
        Status::Unauthorized
    );
    // Plaintext JSON in the cookie (an attacker writing their own) is nothing.
    let forged = Cookie::new("session", r#"{"uid":"x","sid":"y","csrf":"z","iat":1}"#);
    assert_eq!(
        send(accept_json(app.client.get("/api/me")).cookie(forged))
            .await
            .status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn rotation_removes_the_session_records() {
    let app = app().await;
    let u = app.user("rec@example.com").await;
    let token = app.login_token("rec@example.com", PASSWORD).await;
    app.browser_login("rec@example.com", PASSWORD).await;
    send(token_header(app.client.post("/logout-everywhere"), &token)).await;
    let left = app
        .dbh()
        .user_by_session("anything", &u.fs_uniquifier, 0, 0)
        .await
        .unwrap();
    assert!(left.is_none());
}

#[rocket::async_test]
async fn security_headers_on_every_kind_of_response() {
    let app = app().await;
    app.user("h@example.com").await;
    let token = app.login_token("h@example.com", PASSWORD).await;
    let responses = vec![
        ("page", send(app.client.get("/login")).await),
        ("json", app.get_with_token("/api/me", &token).await),
        ("error", send(accept_json(app.client.get("/api/me"))).await),
        ("redirect", send(app.client.get("/api/me")).await),
        ("404", send(app.client.get("/nope")).await),
        ("static", send(app.client.get("/static/style.css")).await),
    ];
    for (what, r) in &responses {
        let csp = r
            .header("Content-Security-Policy")
            .unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{what}");
        assert_eq!(
            r.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"), "{what}");
        assert_eq!(r.header("Referrer-Policy"), Some("same-origin"), "{what}");
        if *what != "static" {
            assert!(
                r.header("Cache-Control").unwrap_or("").contains("no-store"),
                "{what}: authenticated answers are never cached"
            );
        }
    }
    // No inline script or style in any page, so the CSP costs nothing.
    for path in ["/login", "/register", "/"] {
        let page = send(app.client.get(path)).await.body;
        assert!(
            !page.contains("<script") && !page.contains("style=") && !page.contains("<style"),
            "{path}"
        );
    }
}

#[rocket::async_test]
async fn csrf_cannot_be_skipped_with_tricks() {
    let app = app().await;
    app.user("c@example.com").await;
    let mut b = app.browser_login("c@example.com", PASSWORD).await;
    // Token in the XSRF-TOKEN cookie alone is not enough: it must be echoed.
    let r = b
        .send(accept_json(app.client.post("/logout-everywhere")))
        .await;
    assert_eq!(r.status, Status::BadRequest);
    // An empty header is missing, not matching.
    let r = b
        .send(accept_json(
            app.client
                .post("/logout-everywhere")
                .header(Header::new("X-XSRF-Token", "")),
        ))
        .await;
    assert_eq!(r.errors(), vec!["The CSRF token is missing."]);
    // A form with the header value of another session.
    let mut other = app.browser_login("c@example.com", PASSWORD).await;
    let foreign = other.xsrf();
    let r = b
        .send(form_body(
            app.client.post("/logout-everywhere"),
            &[("csrf_token", &foreign)],
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest);
    // A bogus token header does not make a session request token-authenticated.
    let r = b
        .send(accept_json(
            app.client
                .post("/logout-everywhere")
                .header(Header::new("Authentication-Token", "bogus")),
        ))
        .await;
    assert_eq!(
        r.status,
        Status::BadRequest,
        "falls back to the session, which needs CSRF"
    );
    // Nothing was rotated by any of these.
    assert_eq!(b.send(app.client.get("/api/me")).await.status, Status::Ok);
    assert_eq!(
        other.send(app.client.get("/api/me")).await.status,
        Status::Ok
    );
}
