//! Item 5: revocation by rotating fs_uniquifier; logout ends one session.

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

fn xsrf(b: &Browser) -> Header<'static> {
    Header::new("X-XSRF-Token", b.xsrf())
}

#[rocket::async_test]
async fn logout_everywhere_kills_every_token_and_session_at_once() {
    let app = app().await;
    app.user("e@example.com").await;
    let token1 = app.login_token("e@example.com", PASSWORD).await;
    let token2 = app.login_token("e@example.com", PASSWORD).await;
    let mut browser_a = app.browser_login("e@example.com", PASSWORD).await;
    let mut browser_b = app.browser_login("e@example.com", PASSWORD).await;
    assert_eq!(
        browser_b.send(app.client.get("/api/me")).await.status,
        Status::Ok
    );

    let r = browser_a
        .send(accept_json(
            app.client
                .post("/logout-everywhere")
                .header(xsrf(&browser_a)),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.body, r#"{"meta":{"code":200},"response":{}}"#);

    for t in [&token1, &token2] {
        let r = app.get_with_token("/api/test", t).await;
        assert_eq!(r.status, Status::Unauthorized);
        assert_eq!(r.errors(), vec!["You must sign in to view this resource."]);
    }
    let r = browser_b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Unauthorized);
    let r = browser_a.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Unauthorized, "this one included");
    // Signing in again works, with a new identity in the token.
    let fresh = app.login_token("e@example.com", PASSWORD).await;
    assert_eq!(
        app.get_with_token("/api/test", &fresh).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn logout_everywhere_by_token() {
    let app = app().await;
    app.user("tk@example.com").await;
    let token = app.login_token("tk@example.com", PASSWORD).await;
    let mut browser = app.browser_login("tk@example.com", PASSWORD).await;
    let r = send(token_header(app.client.post("/logout-everywhere"), &token)).await;
    assert_eq!(r.status, Status::Ok, "token calls skip CSRF: {}", r.body);
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        browser
            .send(accept_json(app.client.get("/api/me")))
            .await
            .status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn logout_everywhere_from_the_page_form() {
    let app = app().await;
    app.user("pf@example.com").await;
    let mut b = app.browser_login("pf@example.com", PASSWORD).await;
    let home = b.send(app.client.get("/")).await;
    assert!(home.text().contains("Sign out everywhere"));
    let r = b.submit(&app.client, "/logout-everywhere", &[]).await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.location(), "/login");
    assert_eq!(
        b.send(app.client.get("/api/me")).await.status,
        Status::Found,
        "browser redirected to login"
    );
}

#[rocket::async_test]
async fn password_change_rotates_and_reissues_the_callers_session() {
    let app = app().await;
    app.user("c@example.com").await;
    let old_token = app.login_token("c@example.com", PASSWORD).await;
    let mut other = app.browser_login("c@example.com", PASSWORD).await;
    let mut me = app.browser_login("c@example.com", PASSWORD).await;
    let old_cookie = me.get("session").unwrap().clone();

    let r = me
        .send(json_body(
            app.client.post("/change?include_auth_token").header(xsrf(&me)),
            json!({"password": PASSWORD, "new_password": "new password 1", "new_password_confirm": "new password 1"}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let new_token = r.token();
    assert_ne!(
        me.get("session").unwrap().value(),
        old_cookie.value(),
        "fresh session issued"
    );

    assert_eq!(
        app.get_with_token("/api/test", &old_token).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        other
            .send(accept_json(app.client.get("/api/me")))
            .await
            .status,
        Status::Unauthorized
    );
    let replay = send(accept_json(app.client.get("/api/me")).cookie(old_cookie)).await;
    assert_eq!(
        replay.status,
        Status::Unauthorized,
        "the caller's old cookie is dead too"
    );
    assert_eq!(
        me.send(app.client.get("/api/me")).await.status,
        Status::Ok,
        "the caller stays signed in"
    );
    assert_eq!(
        app.get_with_token("/api/test", &new_token).await.status,
        Status::Ok
    );

    // Old password gone, new one works.
    let r = app
        .post_json(
            "/login",
            json!({"email": "c@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    app.login_token("c@example.com", "new password 1").await;
}

#[rocket::async_test]
async fn password_change_validation() {
    let app = app().await;
    app.user("v@example.com").await;
    let token = app.login_token("v@example.com", PASSWORD).await;
    let change = |body: serde_json::Value| {
        let token = token.clone();
        let client = &app.client;
        async move {
            send(json_body(
                token_header(client.post("/change"), &token),
                body,
            ))
            .await
        }
    };
    let r = change(json!({"password": "wrong-one", "new_password": "another pw", "new_password_confirm": "another pw"})).await;
    assert_eq!(
        r.json()["response"]["field_errors"],
        json!({"password": ["Invalid password"]})
    );
    let r = change(
        json!({"password": PASSWORD, "new_password": PASSWORD, "new_password_confirm": PASSWORD}),
    )
    .await;
    assert_eq!(
        r.errors(),
        vec!["Your new password must be different than your previous password."]
    );
    let r = change(
        json!({"password": PASSWORD, "new_password": "short", "new_password_confirm": "other"}),
    )
    .await;
    assert_eq!(
        r.errors(),
        vec![
            "Password must be at least 8 characters",
            "Passwords do not match"
        ]
    );
    let r = change(json!({})).await;
    assert_eq!(
        r.errors(),
        vec!["Password not provided", "Password not provided"]
    );
    assert_eq!(
        r.json()["response"]["field_errors"]["new_password"],
        json!(["Password not provided"])
    );
    // None of these rotated anything.
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn password_change_page_and_form() {
    let app = app().await;
    app.user("pg@example.com").await;
    let mut b = Browser::default();
    let r = b.send(app.client.get("/change")).await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.location(), "/login?next=/change");

    let mut b = app.browser_login("pg@example.com", PASSWORD).await;
    let page = b.send(app.client.get("/change")).await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.text().contains("autocomplete=\"new-password\""));
    let r = b
        .submit(
            &app.client,
            "/change",
            &[
                ("password", PASSWORD),
                ("new_password", "brand new pw"),
                ("new_password_confirm", "brand new pw"),
            ],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(b.send(app.client.get("/api/me")).await.status, Status::Ok);
    app.login_token("pg@example.com", "brand new pw").await;
}

#[rocket::async_test]
async fn logout_ends_only_this_session() {
    let app = app().await;
    app.user("l@example.com").await;
    let token = app.login_token("l@example.com", PASSWORD).await;
    let mut a = app.browser_login("l@example.com", PASSWORD).await;
    let mut b = app.browser_login("l@example.com", PASSWORD).await;

    // Without the CSRF header a signed-in logout is refused.
    let r = a.send(accept_json(app.client.post("/logout"))).await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), vec!["The CSRF token is missing."]);

    let r = a
        .send(accept_json(app.client.post("/logout").header(xsrf(&a))))
        .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.body, r#"{"meta":{"code":200},"response":{}}"#);
    assert!(a.get("session").is_none(), "cookie removed");
    assert_eq!(
        a.send(accept_json(app.client.get("/api/me"))).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        b.send(app.client.get("/api/me")).await.status,
        Status::Ok,
        "other sessions live on"
    );
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok,
        "tokens live on"
    );

    // Browser form logout: 302 to /.
    let r = b.submit(&app.client, "/logout", &[]).await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.location(), "/");

    // GET /logout is 405.
    let r = send(accept_json(app.client.get("/logout"))).await;
    assert_eq!(r.status, Status::MethodNotAllowed);
    assert_eq!(r.json()["meta"]["code"], 405);
}
