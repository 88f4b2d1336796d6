//! Open redirects: the vectors from Flask-Security's CVEs and their kin, in
//! the query and in the form field.

use rocket::http::Status;
use serde_json::json;

use crate::common::*;

const HOSTILE: &[&str] = &[
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "\\\\evil.com",
    "\\\\\\evil.com",
    "/\\evil.com",
    "\\/evil.com",
    " /evil",
    "\t/evil",
    " //evil.com",
    "/\t/evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "https://evil.com",
    "https://evil.com\\.app",
    "http://user@evil.com",
    "//user:pw@evil.com",
    "/\\@evil.com",
    "data:text/html,<script>alert(1)</script>",
    "evil.com",
    "\\evil.com",
    "/%5Cevil.com",
    "/%5C%5Cevil.com",
    "%2F%2Fevil.com",
    "/%2Fevil.com",
    "/%252F%252Fevil.com",
    "/%25252F%25252Fevil.com",
    "%5C%5Cevil.com",
    "/x%0d%0aSet-Cookie:%20a=b",
    "/x\r\nLocation: //evil.com",
    "/%09/evil.com",
    "%09//evil.com",
];

#[rocket::async_test]
async fn json_clients_get_400_for_every_hostile_next() {
    let app = app_with(|f| {
        f.merge(("security.account_limit", 1000))
            .merge(("security.ip_limit_per_minute", 1000))
    })
    .await;
    app.user("r@example.com").await;
    for next in HOSTILE {
        let r = app
            .post_json(
                "/login",
                json!({"email": "r@example.com", "password": PASSWORD, "next": next}),
            )
            .await;
        assert_eq!(r.status, Status::BadRequest, "{next:?}");
        assert_eq!(
            r.errors(),
            vec!["Redirections outside the domain are forbidden"],
            "{next:?}"
        );
        let q = app
            .post_json(
                &format!("/login?next={}", enc(next)),
                json!({"email": "r@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(q.status, Status::BadRequest, "query {next:?}");
    }
}

#[rocket::async_test]
async fn forms_stay_same_origin_for_every_hostile_next() {
    let app = app_with(|f| {
        f.merge(("security.account_limit", 1000))
            .merge(("security.ip_limit_per_minute", 1000))
    })
    .await;
    app.user("f@example.com").await;
    for next in HOSTILE {
        for in_query in [false, true] {
            let mut b = Browser::default();
            b.send(app.client.get("/login")).await;
            let csrf = b.xsrf();
            let mut fields = vec![
                ("csrf_token", csrf.as_str()),
                ("email", "f@example.com"),
                ("password", PASSWORD),
            ];
            let path = if in_query {
                format!("/login?next={}", enc(next))
            } else {
                fields.push(("next", next));
                "/login".to_owned()
            };
            let r = b.send(form_body(app.client.post(path), &fields)).await;
            assert_eq!(r.status, Status::Found, "{next:?}");
            assert_eq!(r.location(), "/", "{next:?} (query: {in_query})");
        }
    }
    // A good one is kept.
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let r = b
        .submit(
            &app.client,
            "/login",
            &[
                ("email", "f@example.com"),
                ("password", PASSWORD),
                ("next", "/account?tab=2"),
            ],
        )
        .await;
    assert_eq!(r.location(), "/account?tab=2");
}

#[rocket::async_test]
async fn the_login_page_does_not_reflect_a_hostile_next_unescaped() {
    let app = app().await;
    let r = send(app.client.get(format!(
        "/login?next={}",
        enc("\"><script>alert(1)</script>")
    )))
    .await;
    assert_eq!(r.status, Status::Ok);
    assert!(!r.body.contains("<script>alert(1)"), "autoescaped");
}
