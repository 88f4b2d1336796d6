//! Browser pages: flash messages after form posts, and the SPA demo page.

use rocket::http::{Cookie, Status};

use crate::common::*;

/// A browser signed in through the login form, as a person would.
async fn form_login(app: &TestApp, b: &mut Browser, email: &str) -> Resp {
    b.send(app.client.get("/login")).await;
    b.submit(
        &app.client,
        "/login",
        &[("email", email), ("password", PASSWORD)],
    )
    .await
}

#[rocket::async_test]
async fn results_are_flashed_once_on_the_next_page() {
    let app = app().await;
    app.user("f@example.com").await;
    let mut b = Browser::default();
    let r = form_login(&app, &mut b, "f@example.com").await;
    assert_eq!(r.status, Status::Found);
    let raw = r.raw_cookie("gh_flash");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
        assert!(raw.contains(attr), "{attr} missing in {raw}");
    }
    let home = b.send(app.client.get("/")).await;
    assert!(home.text().contains("You are signed in."), "{}", home.body);
    assert!(home.body.contains("role=\"status\""));
    let again = b.send(app.client.get("/")).await;
    assert!(
        !again.text().contains("You are signed in."),
        "a flash is shown once"
    );

    // Sign out everywhere by the account page's form: to /login, with news.
    let r = b.submit(&app.client, "/logout-everywhere", &[]).await;
    assert_eq!(r.location(), "/login");
    let login = b.send(app.client.get("/login")).await;
    assert!(login.text().contains("You are signed out everywhere"));
}

#[rocket::async_test]
async fn json_clients_get_no_flash_and_forged_flash_cookies_show_nothing() {
    let app = app().await;
    app.user("j@example.com").await;
    let r = app
        .post_json(
            "/login",
            serde_json::json!({"email": "j@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(r.cookie("gh_flash").is_none());

    let page = send(
        app.client
            .get("/login")
            .cookie(Cookie::new("gh_flash", "<b>Your account is locked</b>")),
    )
    .await;
    assert!(
        !page.text().contains("locked"),
        "only known codes are shown"
    );
    assert!(!page.body.contains("class=\"flash"));
    let known = send(
        app.client
            .get("/login")
            .cookie(Cookie::new("gh_flash", "password-changed")),
    )
    .await;
    assert!(known
        .text()
        .contains("You successfully changed your password."));
}

#[rocket::async_test]
async fn the_demo_page_is_served_with_a_strict_policy() {
    let app = app().await;
    let r = send(app.client.get("/demo")).await;
    assert_eq!(r.status, Status::Ok);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(r
        .body
        .contains("<script src=\"/static/demo.js\" defer></script>"));
    assert!(!r.body.contains("<script>"), "no inline script");
    let csp = r.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    let js = send(app.client.get("/static/demo.js")).await;
    assert_eq!(js.status, Status::Ok);
    assert!(js.body.contains("X-XSRF-Token") && js.body.contains("Authentication-Token"));
}

#[rocket::async_test]
async fn the_home_page_links_the_demo_only_where_it_is_mounted() {
    let app = app().await;
    let home = send(app.client.get("/")).await;
    assert!(home.text().contains("href=\"/demo\""), "{}", home.body);

    // A library user's app without the demo API: no dead link, no page.
    let db = fresh_db().await;
    let bare = rocket::local::asynchronous::Client::untracked(gatehouse::rocket(figment(&db.url)))
        .await
        .expect("ignites");
    let home = send(bare.get("/")).await;
    assert_eq!(home.status, Status::Ok);
    assert!(!home.text().contains("/demo"), "{}", home.body);
    assert_eq!(send(bare.get("/demo")).await.status, Status::NotFound);
}
