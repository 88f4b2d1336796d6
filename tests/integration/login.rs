//! Items 3 and 4: sign in the browser way and the API way.

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn login_page_has_a_complete_form_and_json_twin() {
    let app = app().await;
    let mut b = Browser::default();
    let page = b.send(app.client.get("/login?next=/api/me")).await;
    assert_eq!(page.status, Status::Ok);
    for needle in [
        "name=\"email\"",
        "name=\"password\"",
        "name=\"remember\"",
        "name=\"csrf_token\"",
        "autocomplete=\"username\"",
        "autocomplete=\"current-password\"",
        "value=\"/api/me\"",
    ] {
        assert!(page.text().contains(needle), "{needle} missing");
    }
    assert!(page
        .header("Content-Type")
        .unwrap()
        .starts_with("text/html"));

    let r = send(accept_json(app.client.get("/login"))).await;
    assert_eq!(r.status, Status::Ok);
    let body = r.json();
    assert_eq!(body["response"]["identity_attributes"], json!(["email"]));
    assert!(body["response"]["csrf_token"].is_string());
    assert!(body["response"].get("user").is_none());
    assert_eq!(r.header("Cache-Control"), Some("private, no-store"));
    let xsrf = r.cookie("XSRF-TOKEN").expect("XSRF-TOKEN at GET /login");
    assert_eq!(
        xsrf.value(),
        body["response"]["csrf_token"].as_str().unwrap()
    );
    let raw = r.raw_cookie("XSRF-TOKEN");
    assert!(
        raw.contains("SameSite=Strict") && !raw.contains("HttpOnly"),
        "{raw}"
    );
}

#[rocket::async_test]
async fn form_login_sets_a_session_and_redirects_to_next() {
    let app = app().await;
    app.user("ann@example.com").await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let csrf = b.xsrf();
    let r = b
        .submit(
            &app.client,
            "/login",
            &[
                ("email", "ann@example.com"),
                ("password", PASSWORD),
                ("next", "/api/me?x=1"),
            ],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/api/me?x=1");
    let raw = r.raw_cookie("session");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(raw.contains(attr), "{attr} missing in {raw}");
    }
    assert!(
        !raw.contains("Max-Age") && !raw.contains("Expires"),
        "plain login is a browser-session cookie: {raw}"
    );
    assert_ne!(b.xsrf(), csrf, "login issues a fresh CSRF secret");

    let me = b.send(app.client.get("/api/me")).await;
    assert_eq!(me.status, Status::Ok);
    assert_eq!(me.json()["email"], "ann@example.com");
}

#[rocket::async_test]
async fn remember_me_makes_the_cookie_persistent() {
    let app = app().await;
    app.user("rem@example.com").await;
    let r = app
        .post_json(
            "/login",
            json!({"email": "rem@example.com", "password": PASSWORD, "remember": true}),
        )
        .await;
    let raw = r.raw_cookie("session");
    assert!(raw.contains("Max-Age=2592000"), "{raw}");
    for falsy in [json!(false), json!("false"), json!("")] {
        let r = app
            .post_json(
                "/login",
                json!({"email": "rem@example.com", "password": PASSWORD, "remember": falsy}),
            )
            .await;
        let raw = r.raw_cookie("session");
        assert!(!raw.contains("Max-Age"), "{falsy}: {raw}");
    }
}

#[rocket::async_test]
async fn api_login_returns_a_token_that_works_in_both_headers() {
    let app = app().await;
    app.user("api@example.com").await;
    let r = app
        .post_json(
            "/login?include_auth_token",
            json!({"email": "api@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    let body = r.json();
    assert_eq!(body["meta"]["code"], 200);
    assert_eq!(body["response"]["tf_required"], false);
    assert!(body["response"]["csrf_token"].is_string());
    let token = r.token();
    // Keys sorted, compact.
    assert!(
        r.body
            .starts_with(r#"{"meta":{"code":200},"response":{"csrf_token":"#),
        "{}",
        r.body
    );
    assert_eq!(r.header("Cache-Control"), Some("private, no-store"));

    let t = app.get_with_token("/api/test", &token).await;
    assert_eq!(
        (t.status, t.json()),
        (Status::Ok, json!({"msg": "Hello World"}))
    );
    let b = send(
        app.client
            .get("/api/test")
            .header(Header::new("Authorization", format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(b.status, Status::Ok);

    // Presence of include_auth_token is enough, any value.
    for q in [
        "include_auth_token=",
        "include_auth_token=false",
        "x=1&include_auth_token",
    ] {
        let r = app
            .post_json(
                &format!("/login?{q}"),
                json!({"email": "api@example.com", "password": PASSWORD}),
            )
            .await;
        assert!(
            r.json()["response"]["user"]["authentication_token"].is_string(),
            "{q}"
        );
    }
    let r = app
        .post_json(
            "/login",
            json!({"email": "api@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        r.json()["response"]["user"],
        json!({}),
        "no token unless asked"
    );
}

#[rocket::async_test]
async fn bearer_can_be_turned_off_and_query_param_turned_on() {
    let app = app_with(|f| {
        f.merge(("security.accept_bearer", false))
            .merge(("security.token_query_param", "auth_token"))
    })
    .await;
    app.user("q@example.com").await;
    let token = app.login_token("q@example.com", PASSWORD).await;
    let b =
        send(accept_json(app.client.get("/api/test").header(
            Header::new("Authorization", format!("Bearer {token}")),
        )))
        .await;
    assert_eq!(b.status, Status::Unauthorized);
    let q = send(app.client.get(format!("/api/test?auth_token={token}"))).await;
    assert_eq!(q.status, Status::Ok);

    let app = app_with(|f| f.merge(("security.token_header", "X-Api-Token"))).await;
    app.user("h@example.com").await;
    let token = app.login_token("h@example.com", PASSWORD).await;
    let r = send(
        app.client
            .get("/api/test")
            .header(Header::new("X-Api-Token", token.clone())),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    let q = send(accept_json(
        app.client.get(format!("/api/test?auth_token={token}")),
    ))
    .await;
    assert_eq!(
        q.status,
        Status::Unauthorized,
        "query tokens are off by default"
    );
}

#[rocket::async_test]
async fn failures_are_generic_and_cost_exactly_one_hash() {
    let app = app().await;
    app.user("known@example.com").await;
    let before = app.sec().hasher.hash_count();
    let unknown = app
        .post_json(
            "/login",
            json!({"email": "nobody@example.com", "password": "whatever1"}),
        )
        .await;
    let after_unknown = app.sec().hasher.hash_count();
    let wrong = app
        .post_json(
            "/login",
            json!({"email": "known@example.com", "password": "whatever1"}),
        )
        .await;
    let after_wrong = app.sec().hasher.hash_count();
    assert_eq!(after_unknown - before, 1, "unknown email: one hash");
    assert_eq!(after_wrong - after_unknown, 1, "wrong password: one hash");
    assert_eq!(unknown.status, Status::BadRequest);
    assert_eq!(unknown.body, wrong.body);
    let strip = |r: &Resp| {
        r.headers
            .iter()
            // Both vary per response, whatever the outcome.
            .filter(|(k, _)| k != "Date" && k != "X-Request-Id")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&unknown), strip(&wrong));
    assert_eq!(
        unknown.json()["response"]["field_errors"],
        json!({"": ["Authentication failed - identity or password/passcode invalid"]})
    );
    assert!(unknown.cookie("session").is_none() && wrong.cookie("session").is_none());

    // Over 128 characters: generic failure, no hash at all.
    let before = app.sec().hasher.hash_count();
    let long = app
        .post_json(
            "/login",
            json!({"email": "known@example.com", "password": "p".repeat(129)}),
        )
        .await;
    assert_eq!(long.body, wrong.body);
    assert_eq!(app.sec().hasher.hash_count(), before);
}

#[rocket::async_test]
async fn empty_fields_and_disabled_accounts() {
    let app = app().await;
    let r = app
        .post_json("/login", json!({"email": "", "password": ""}))
        .await;
    assert_eq!(r.status, Status::BadRequest);
    // FS lists the password's error first (the oracle checks it).
    assert_eq!(
        r.errors(),
        vec!["Password not provided", "Email not provided"]
    );

    let u = app.user("off@example.com").await;
    app.dbh().set_active(u.id, false).await.unwrap();
    let wrong = app
        .post_json(
            "/login",
            json!({"email": "off@example.com", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(
        wrong.errors(),
        vec!["Authentication failed - identity or password/passcode invalid"]
    );
    let right = app
        .post_json(
            "/login",
            json!({"email": "off@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(right.errors(), vec!["Account is disabled."]);
    assert_eq!(
        right.json()["response"]["field_errors"]["email"],
        json!(["Account is disabled."]),
        "FS puts it on the email field"
    );
    assert!(right.cookie("session").is_none());
}

#[rocket::async_test]
async fn form_login_failure_rerenders_with_the_generic_error_and_no_session() {
    let app = app().await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let csrf = b.xsrf();
    let r = b
        .submit(
            &app.client,
            "/login",
            &[("email", "x@example.com"), ("password", "bad-password")],
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    assert!(r
        .text()
        .contains("Authentication failed - identity or password/passcode invalid"));
    assert!(r.text().contains("value=\"x@example.com\""));
    assert!(
        !r.body.contains("bad-password"),
        "passwords are never echoed"
    );
    assert_eq!(
        r.set_cookies(),
        Vec::<&str>::new(),
        "a failed sign-in sets no cookie"
    );
    assert_eq!(b.xsrf(), csrf, "the anonymous session stands");
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn next_is_validated() {
    let app = app().await;
    app.user("n@example.com").await;
    for bad in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        " /x",
        "/%2F%2Fevil.com",
    ] {
        let r = app
            .post_json(
                "/login",
                json!({"email": "n@example.com", "password": PASSWORD, "next": bad}),
            )
            .await;
        assert_eq!(r.status, Status::BadRequest, "{bad}");
        assert_eq!(
            r.errors(),
            vec!["Redirections outside the domain are forbidden"],
            "{bad}"
        );
    }
    // Forms fall back to "/".
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let r = b
        .submit(
            &app.client,
            format!("/login?next={}", enc("//evil.com")),
            &[("email", "n@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.location(), "/");
}

#[rocket::async_test]
async fn sign_in_is_tracked() {
    let app = app().await;
    let u = app.user("t@example.com").await;
    app.post_json(
        "/login",
        json!({"email": "t@example.com", "password": PASSWORD}),
    )
    .await;
    let first = app.dbh().tracking(u.id).await.unwrap().unwrap();
    assert_eq!(first.login_count, Some(1));
    assert_eq!(first.current_login_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(first.last_login_at, first.current_login_at);
    app.post_json(
        "/login",
        json!({"email": "t@example.com", "password": PASSWORD}),
    )
    .await;
    let second = app.dbh().tracking(u.id).await.unwrap().unwrap();
    assert_eq!(second.login_count, Some(2));
    assert_eq!(second.last_login_at, first.current_login_at);
    assert!(second.current_login_at >= first.current_login_at);
}
