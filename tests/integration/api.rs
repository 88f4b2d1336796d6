//! Items 8 and 9: HTTP Basic and the tutorial's demo API.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

fn basic(user: &str, pass: &str) -> Header<'static> {
    Header::new(
        "Authorization",
        format!("Basic {}", STANDARD.encode(format!("{user}:{pass}"))),
    )
}

#[rocket::async_test]
async fn http_basic() {
    let app = app().await;
    app.user("basic@example.com").await;
    let r = send(
        app.client
            .get("/api/basic-test")
            .header(basic("basic@example.com", PASSWORD)),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.json(), json!({"msg": "Hello basic@example.com"}));

    for h in [
        Some(basic("basic@example.com", "wrong-password")),
        Some(basic("nobody@example.com", PASSWORD)),
        Some(Header::new("Authorization", "Basic !!!notbase64")),
        None,
    ] {
        let req = app.client.get("/api/basic-test");
        let req = match h {
            Some(h) => req.header(h),
            None => req,
        };
        let r = send(req).await;
        assert_eq!(r.status, Status::Unauthorized);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(r#"Basic realm="Login Required""#)
        );
        assert!(r.header("Location").is_none(), "Basic never redirects");
    }
    let r = send(accept_json(app.client.get("/api/basic-test"))).await;
    assert_eq!(r.errors(), vec!["You must sign in to view this resource."]);
}

#[rocket::async_test]
async fn demo_api() {
    let app = app().await;
    app.user_with("me@example.com", PASSWORD, &["editor"]).await;
    app.user("you@example.com").await;

    let r = send(app.client.get("/api/public")).await;
    assert_eq!(r.status, Status::Ok);

    let token = app.login_token("me@example.com", PASSWORD).await;
    let r = app.get_with_token("/api/me", &token).await;
    assert_eq!(
        r.json(),
        json!({"id": 1, "email": "me@example.com", "roles": ["editor"]})
    );

    // A like is stored for the CURRENT user, whatever the body says.
    let r = send(json_body(
        token_header(app.client.post("/api/articles/7/likes"), &token),
        json!({"user_id": 2}),
    ))
    .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
    let like = r.json();
    assert_eq!(like["user_id"], 1);
    assert_eq!(like["article_id"], 7);
    assert_eq!(like["likes"], 1);
    let location = r.location().to_owned();
    assert_eq!(location, format!("/api/articles/7/likes/{}", like["id"]));
    let got = send(app.client.get(location.clone())).await;
    assert_eq!(got.status, Status::Ok);
    assert_eq!(got.json()["id"], like["id"]);

    // Liking again is idempotent: 200, same like.
    let again = send(token_header(
        app.client.post("/api/articles/7/likes"),
        &token,
    ))
    .await;
    assert_eq!(again.status, Status::Ok);
    assert_eq!(again.json()["id"], like["id"]);

    // Another user, by session cookie (with the CSRF header).
    let mut b = app.browser_login("you@example.com", PASSWORD).await;
    let xsrf = b.xsrf();
    let r = b
        .send(
            app.client
                .post("/api/articles/7/likes")
                .header(Header::new("X-XSRF-Token", xsrf)),
        )
        .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
    assert_eq!(r.json()["user_id"], 2);

    let count = send(app.client.get("/api/articles/7/likes")).await;
    assert_eq!(count.json(), json!({"article_id": 7, "likes": 2}));
    let none = send(app.client.get("/api/articles/8/likes")).await;
    assert_eq!(none.json()["likes"], 0);
    let missing = send(accept_json(app.client.get("/api/articles/7/likes/999"))).await;
    assert_eq!(missing.status, Status::NotFound);
    let bad_id = send(accept_json(app.client.get("/api/articles/abc/likes"))).await;
    assert_eq!(bad_id.status, Status::NotFound);
    assert_eq!(bad_id.json()["meta"]["code"], 404);

    let anon = send(accept_json(app.client.post("/api/articles/7/likes"))).await;
    assert_eq!(anon.status, Status::Unauthorized);
}
