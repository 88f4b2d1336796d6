//! Issue 10: writes that belong together are one transaction; database
//! errors are graded (a bug is a 500 whose cause is logged, never shown);
//! housekeeping runs off the request path, on the injected clock.
//!
//! A trigger makes the second write of a pair fail, as a disk error or a
//! constraint would: the first write must not stay behind.

use rocket::http::Status;

use crate::common::*;

/// Runs DDL on the test database, on either backend.
async fn exec(app: &TestApp, sql: &str) {
    crate::on_pool!(app, p => sqlx::raw_sql(sql).execute(p).await.map(|_| ()))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes every `event` on `table` fail with the message "boom".
async fn fail_on(app: &TestApp, event: &str, table: &str) {
    let sql = if app.db.is_postgres() {
        format!(
            "CREATE FUNCTION gh_test_boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER gh_test_boom BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION gh_test_boom();"
        )
    } else {
        format!(
            "CREATE TRIGGER gh_test_boom BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'boom'); END;"
        )
    };
    exec(app, &sql).await;
}

#[rocket::async_test]
async fn a_rotation_and_its_session_deletions_are_one_transaction() {
    let app = app().await;
    let user = app.user("tx@example.com").await;
    let mut b = app.browser_login("tx@example.com", PASSWORD).await;
    let token = app.login_token("tx@example.com", PASSWORD).await;
    fail_on(&app, "DELETE", "gh_session").await;

    let r = send(token_header(app.client.post("/logout-everywhere"), &token)).await;
    assert_eq!(r.status, Status::InternalServerError, "{}", r.body);
    assert_eq!(r.errors(), vec!["Internal server error."]);
    assert!(!r.body.contains("boom"), "the cause is logged, not shown");

    // The uniquifier did not change without its session rows going: all or
    // nothing, so the token and the session still work.
    let now = app
        .sec()
        .find_user("tx@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.fs_uniquifier, user.fs_uniquifier);
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok
    );
    assert_eq!(b.send(app.client.get("/api/me")).await.status, Status::Ok);
}

#[rocket::async_test]
async fn a_password_change_is_all_or_nothing() {
    let app = app().await;
    let user = app.user("pw@example.com").await;
    let token = app.login_token("pw@example.com", PASSWORD).await;
    app.browser_login("pw@example.com", PASSWORD).await;
    fail_on(&app, "DELETE", "gh_session").await;
    let r = send(token_header(
        json_body(
            app.client.post("/change"),
            serde_json::json!({"password": PASSWORD, "new_password": "another horse",
                "new_password_confirm": "another horse"}),
        ),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::InternalServerError, "{}", r.body);
    let now = app
        .sec()
        .find_user("pw@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.password, user.password, "the old password stands");
    assert_eq!(now.fs_uniquifier, user.fs_uniquifier);
    app.login_token("pw@example.com", PASSWORD).await;
}

#[rocket::async_test]
async fn a_user_and_its_roles_are_one_transaction() {
    let app = app().await;
    gatehouse::core::admin::create_role(app.sec(), "editor", &[], None)
        .await
        .unwrap();
    fail_on(&app, "INSERT", "roles_users").await;
    let err = gatehouse::core::admin::create_user(
        app.sec(),
        "roles@example.com",
        PASSWORD,
        &["editor".to_owned()],
    )
    .await
    .expect_err("the role cannot be stored");
    assert!(!err.to_string().is_empty());
    assert!(
        app.sec()
            .find_user("roles@example.com")
            .await
            .unwrap()
            .is_none(),
        "no user without their roles"
    );
}

#[rocket::async_test]
async fn a_schema_bug_is_a_500_not_a_503_or_a_401() {
    let app = app().await;
    app.user("schema@example.com").await;
    let mut b = app.browser_login("schema@example.com", PASSWORD).await;
    exec(&app, "DROP TABLE gh_session").await;
    let r = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::InternalServerError, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"meta":{"code":500},"response":{"errors":["Internal server error."]}}"#
    );
    assert!(r.header("Retry-After").is_none(), "not worth a retry");
}

#[rocket::async_test]
async fn housekeeping_purges_what_expired_and_nothing_else() {
    let app = app_with(|f| f.merge(("security.session_max_age", 60))).await;
    app.user("hk@example.com").await;
    let mut old = app.browser_login("hk@example.com", PASSWORD).await;
    assert_eq!(
        app.sec().housekeeping().await.unwrap().0,
        0,
        "nothing expired yet"
    );
    app.clock.advance(std::time::Duration::from_secs(61));
    let mut new = app.browser_login("hk@example.com", PASSWORD).await;
    let (sessions, _) = app.sec().housekeeping().await.unwrap();
    assert_eq!(sessions, 1, "the expired session's record goes");
    assert_eq!(
        old.send(accept_json(app.client.get("/api/me")))
            .await
            .status,
        Status::Unauthorized
    );
    assert_eq!(new.send(app.client.get("/api/me")).await.status, Status::Ok);
}
