//! A database that cannot answer is a 503 with Retry-After: never a 401
//! (clients would drop valid tokens), never a 500, never a hang.

use std::time::{Duration, Instant};

use rocket::http::Status;
use serde_json::json;

use crate::common::*;

fn assert_503(r: &Resp, what: &str) {
    assert_eq!(r.status, Status::ServiceUnavailable, "{what}: {}", r.body);
    assert!(r.header("Retry-After").is_some(), "{what}: Retry-After");
}

#[rocket::async_test]
async fn a_closed_pool_is_503_everywhere() {
    let app = app().await;
    app.user("db@example.com").await;
    let token = app.login_token("db@example.com", PASSWORD).await;
    let mut b = app.browser_login("db@example.com", PASSWORD).await;
    let reset = app.sec().links.mint_reset(
        &app.sec()
            .find_user("db@example.com")
            .await
            .unwrap()
            .unwrap(),
        app.sec().now() as u64,
    );

    app.dbh().close().await;

    // Issue 12: the mail flows too (a queued mail is a database write).
    assert_503(
        &app.post_json("/reset", json!({"email": "db@example.com"}))
            .await,
        "forgot password",
    );
    assert_503(
        &send(accept_json(app.client.get(format!("/reset/{reset}")))).await,
        "reset link",
    );
    assert_503(
        &send(accept_json(token_header(
            app.client.get("/change-email"),
            &token,
        )))
        .await,
        "change email",
    );

    let r = app.get_with_token("/api/test", &token).await;
    assert_503(&r, "token");
    assert_eq!(r.json()["meta"]["code"], 503);
    assert_503(
        &b.send(accept_json(app.client.get("/api/me"))).await,
        "session",
    );
    assert_503(
        &app.post_json(
            "/login",
            json!({"email": "db@example.com", "password": PASSWORD}),
        )
        .await,
        "login",
    );
    assert_503(
        &app.post_json("/register", json!({"email": "n@example.com", "password": "password1", "password_confirm": "password1"})).await,
        "register",
    );
    assert_503(
        &send(app.client.get("/api/articles/1/likes")).await,
        "likes",
    );
    // A browser gets a 503 page, not a redirect to the login page.
    let page = b.send(app.client.get("/api/me")).await;
    assert_503(&page, "browser");
    assert!(page.text().contains("<html"));
}

/// A write lock held elsewhere (another process, a migration, a long
/// transaction): the request waits at most the configured timeout, then 503.
#[rocket::async_test]
async fn a_locked_database_is_503_within_the_timeout() {
    use sqlx::Connection;
    let app = app_with(|f| f.merge(("databases.gatehouse.timeout_ms", 1000))).await;
    app.user("lock@example.com").await;

    let started;
    let r;
    if app.db.is_postgres() {
        let mut other = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::query(r#"LOCK TABLE "user" IN ACCESS EXCLUSIVE MODE"#)
            .execute(&mut *tx)
            .await
            .unwrap();
        started = Instant::now();
        r = app
            .post_json(
                "/login",
                json!({"email": "lock@example.com", "password": PASSWORD}),
            )
            .await;
        tx.rollback().await.unwrap();
    } else {
        let mut other = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut other)
            .await
            .unwrap();
        started = Instant::now();
        r = app
            .post_json(
                "/login",
                json!({"email": "lock@example.com", "password": PASSWORD}),
            )
            .await;
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    }
    assert_503(&r, "locked");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Recovers by itself.
    let r = app
        .post_json(
            "/login",
            json!({"email": "lock@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

/// One hashing slot, no waiting for it, slow hashes: a burst overflows.
pub fn one_hashing_slot(f: rocket::figment::Figment) -> rocket::figment::Figment {
    f.merge(("security.hash_slots", 1))
        .merge(("security.hash_admission_ms", 1))
        .merge(("security.bcrypt_cost", 10))
}

/// Six sign-ins at once of one account (created here).
pub async fn sign_in_burst(app: &TestApp) -> Vec<Resp> {
    app.user("busy@example.com").await;
    let logins: Vec<_> = (0..6)
        .map(|_| {
            app.post_json(
                "/login",
                json!({"email": "busy@example.com", "password": PASSWORD}),
            )
        })
        .collect();
    crate::register::futures_join_all(logins).await
}

/// All hashing slots busy past the admission timeout: 503 at once, not a
/// queue that grows without bound; the service recovers after the burst.
#[rocket::async_test]
async fn full_hashing_slots_answer_503_with_retry_after() {
    let app = app_with(one_hashing_slot).await;
    let results = sign_in_burst(&app).await;
    let busy: Vec<&Resp> = results
        .iter()
        .filter(|r| r.status == Status::ServiceUnavailable)
        .collect();
    let ok = results.iter().filter(|r| r.status == Status::Ok).count();
    assert!(!busy.is_empty(), "a burst over one slot must be refused");
    assert!(ok >= 1, "the first one gets through");
    assert_eq!(ok + busy.len(), results.len(), "only 200 or 503");
    for r in busy {
        assert_eq!(r.header("Retry-After"), Some("1"));
        assert_eq!(r.json()["meta"]["code"], 503);
    }
    let r = app
        .post_json(
            "/login",
            json!({"email": "busy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
}
