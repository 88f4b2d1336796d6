//! Item 7: roles and permissions.

use rocket::http::Status;
use rocket::{get, routes};
use serde_json::json;

use gatehouse::http::guards::{
    PermissionsAccepted, PermissionsRequired, RolesAccepted, RolesRequired,
};
use gatehouse::role_set;

use crate::common::*;

role_set!(EditorAndAdmin = ["editor", "admin"]);
role_set!(EditorOrAdmin = ["editor", "admin"]);
role_set!(ReadWrite = ["read", "write"]);
role_set!(ReadOrWrite = ["read", "write"]);

#[get("/t/roles-required")]
fn roles_required(_u: RolesRequired<EditorAndAdmin>) -> &'static str {
    "ok"
}
#[get("/t/roles-accepted")]
fn roles_accepted(_u: RolesAccepted<EditorOrAdmin>) -> &'static str {
    "ok"
}
#[get("/t/perms-required")]
fn perms_required(_u: PermissionsRequired<ReadWrite>) -> &'static str {
    "ok"
}
#[get("/t/perms-accepted")]
fn perms_accepted(_u: PermissionsAccepted<ReadOrWrite>) -> &'static str {
    "ok"
}

async fn app_with_routes() -> (rocket::local::asynchronous::Client, TestApp) {
    let app = app().await;
    let rocket = gatehouse::demo::mount(gatehouse::rocket(figment(&app.db.url))).mount(
        "/",
        routes![
            roles_required,
            roles_accepted,
            perms_required,
            perms_accepted
        ],
    );
    let client = rocket::local::asynchronous::Client::untracked(rocket)
        .await
        .unwrap();
    (client, app)
}

#[rocket::async_test]
async fn role_and_permission_guards() {
    let (client, app) = app_with_routes().await;
    let db = app.dbh();
    db.create_role("reader", None, Some("read")).await.unwrap();
    db.create_role("writer", None, Some("write, publish"))
        .await
        .unwrap();
    app.user_with(
        "both@example.com",
        PASSWORD,
        &["editor", "admin", "reader", "writer"],
    )
    .await;
    app.user_with("editor@example.com", PASSWORD, &["editor", "reader"])
        .await;
    app.user_with("none@example.com", PASSWORD, &[]).await;

    let both = app.login_token("both@example.com", PASSWORD).await;
    let editor = app.login_token("editor@example.com", PASSWORD).await;
    let none = app.login_token("none@example.com", PASSWORD).await;
    let get = |path: &'static str, token: String| {
        let client = &client;
        async move { send(token_header(client.get(path), &token)).await.status }
    };
    assert_eq!(get("/t/roles-required", both.clone()).await, Status::Ok);
    assert_eq!(
        get("/t/roles-required", editor.clone()).await,
        Status::Forbidden
    );
    assert_eq!(get("/t/roles-accepted", editor.clone()).await, Status::Ok);
    assert_eq!(
        get("/t/roles-accepted", none.clone()).await,
        Status::Forbidden
    );
    assert_eq!(get("/t/perms-required", both.clone()).await, Status::Ok);
    assert_eq!(
        get("/t/perms-required", editor.clone()).await,
        Status::Forbidden
    );
    assert_eq!(get("/t/perms-accepted", editor.clone()).await, Status::Ok);
    assert_eq!(
        get("/t/perms-accepted", none.clone()).await,
        Status::Forbidden
    );
    // Anonymous: 401 before any role check.
    let r = send(accept_json(client.get("/t/roles-required"))).await;
    assert_eq!(r.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn admin_users_needs_the_admin_role() {
    let app = app().await;
    app.user_with("admin@example.com", PASSWORD, &["admin"])
        .await;
    app.user("plain@example.com").await;
    let admin = app.login_token("admin@example.com", PASSWORD).await;
    let plain = app.login_token("plain@example.com", PASSWORD).await;

    let r = app.get_with_token("/api/admin/users", &plain).await;
    assert_eq!(r.status, Status::Forbidden);
    assert_eq!(
        r.body,
        r#"{"meta":{"code":403},"response":{"errors":["You do not have permission to view this resource."]}}"#
    );
    let r = app.get_with_token("/api/admin/users", &admin).await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(
        r.json()["users"],
        json!([
            {"id": 1, "email": "admin@example.com", "active": true, "roles": ["admin"]},
            {"id": 2, "email": "plain@example.com", "active": true, "roles": []},
        ])
    );
    // A browser without the role gets an HTML 403 page.
    let mut b = app.browser_login("plain@example.com", PASSWORD).await;
    let r = b.send(app.client.get("/api/admin/users")).await;
    assert_eq!(r.status, Status::Forbidden);
    assert!(r.text().contains("<html") && r.text().contains("You do not have permission"));
}
