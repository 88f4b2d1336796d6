//! Issue 6, item 4: moving off Flask-Security-Too. A database built the way
//! FS's fsqla_v3 models build it, with bcrypt and argon2 users (FS 5's
//! default), roles, an inactive user and a legacy plaintext password.

use rocket::http::Status;
use serde_json::{json, Value};

use crate::common::*;

fn fixture(name: &str) -> Value {
    let text = match name {
        "argon2" => include_str!("../fixtures/argon2.json"),
        _ => include_str!("../fixtures/vectors.json"),
    };
    serde_json::from_str(text).unwrap()
}

#[rocket::async_test]
async fn flask_users_sign_in_and_argon2_is_rehashed_to_bcrypt() {
    let dir = tempfile::tempdir().unwrap();
    let argon = fixture("argon2");
    let argon_hash = argon["hash"].as_str().unwrap();
    let bcrypt_hash = fixture("vectors")["passwords"][0]["stored_hashes_that_verify"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let users = [
        FsUser {
            id: 1,
            email: "bcrypt@example.com",
            password: &bcrypt_hash,
            active: true,
            uniquifier: "11111111111111111111111111111111",
        },
        FsUser {
            id: 2,
            email: "argon@example.com",
            password: argon_hash,
            active: true,
            uniquifier: "22222222222222222222222222222222",
        },
        FsUser {
            id: 3,
            email: "gone@example.com",
            password: argon_hash,
            active: false,
            uniquifier: "33333333333333333333333333333333",
        },
        FsUser {
            id: 4,
            email: "plain@example.com",
            password: "password",
            active: true,
            uniquifier: "44444444444444444444444444444444",
        },
    ];
    let url = fs_sqlite_database(
        dir.path(),
        &users,
        &[("admin", "read,write", &[2]), ("user", "", &[1, 2])],
    )
    .await;
    // gatehouse configured with the Flask app's secrets (FS's password salt).
    let client = client_on(&url, |f| {
        f.merge((
            "security.password_salt",
            argon["password_salt"].as_str().unwrap(),
        ))
        .merge(("security.bcrypt_cost", 4))
    })
    .await;
    let sec = client.rocket().state::<gatehouse::Security>().unwrap();
    let login = |email: &'static str| {
        let client = &client;
        async move {
            send(json_body(
                client.post("/login?include_auth_token"),
                json!({"email": email, "password": "password"}),
            ))
            .await
        }
    };

    let r = login("bcrypt@example.com").await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let stored = sec
        .find_user("bcrypt@example.com")
        .await
        .unwrap()
        .unwrap()
        .password
        .unwrap();
    assert_eq!(
        stored, bcrypt_hash,
        "a bcrypt hash at or above the configured cost stays"
    );

    // argon2: verifies with the full 88-character pre-hash, then becomes bcrypt.
    let r = login("argon@example.com").await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = r.token();
    let stored = sec
        .find_user("argon@example.com")
        .await
        .unwrap()
        .unwrap()
        .password
        .unwrap();
    assert!(stored.starts_with("$2b$04$"), "rehashed: {stored}");
    let me = send(token_header(client.get("/api/me"), &token)).await;
    assert_eq!(me.json()["roles"], json!(["admin", "user"]));
    assert_eq!(
        send(token_header(client.get("/api/admin/users"), &token))
            .await
            .status,
        Status::Ok
    );
    // The rehash kept the identity: the token from before it still works,
    // and the same password signs in against the new hash.
    assert_eq!(login("argon@example.com").await.status, Status::Ok);
    assert_eq!(
        send(token_header(client.get("/api/test"), &token))
            .await
            .status,
        Status::Ok
    );
    let wrong = send(json_body(
        client.post("/login"),
        json!({"email": "argon@example.com", "password": "wrong-pass"}),
    ))
    .await;
    assert_eq!(wrong.status, Status::BadRequest);

    // Inactive: disabled message after the right password.
    let r = login("gone@example.com").await;
    assert_eq!(r.errors(), vec!["Account is disabled."]);

    // Enrolled in an FS two-factor method gatehouse does not serve (SMS):
    // refused after the right password, never downgraded to password-only.
    // (The authenticator signs in with a code: twofactor.rs.)
    sqlx::query("UPDATE user SET tf_primary_method = 'sms' WHERE id = 1")
        .execute(
            &mut <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let r = login("bcrypt@example.com").await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        vec!["This account requires two-factor sign-in, which this server does not offer yet."]
    );
    assert!(r.cookie("session").is_none());
    let wrong = send(json_body(
        client.post("/login"),
        json!({"email": "bcrypt@example.com", "password": "wrong-pass"}),
    ))
    .await;
    assert_eq!(
        wrong.errors(),
        vec!["Authentication failed - identity or password/passcode invalid"]
    );

    // Plaintext (and any other legacy scheme) is refused, never compared.
    let r = login("plain@example.com").await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        vec!["Authentication failed - identity or password/passcode invalid"]
    );
    let stored = sec
        .find_user("plain@example.com")
        .await
        .unwrap()
        .unwrap()
        .password
        .unwrap();
    assert_eq!(stored, "password", "left for the operator to reset");
}

/// An argon2 hash is verified on the blocking pool, and costs one
/// verification (plus one bcrypt, once, for the rehash).
#[rocket::async_test]
async fn argon2_costs_one_verify_and_one_rehash_once() {
    let dir = tempfile::tempdir().unwrap();
    let argon = fixture("argon2");
    let users = [FsUser {
        id: 1,
        email: "a@example.com",
        password: argon["hash"].as_str().unwrap(),
        active: true,
        uniquifier: "55555555555555555555555555555555",
    }];
    let url = fs_sqlite_database(dir.path(), &users, &[]).await;
    let client = client_on(&url, |f| {
        f.merge(("security.password_salt", "really super secret"))
    })
    .await;
    let sec = client.rocket().state::<gatehouse::Security>().unwrap();
    let before = sec.hasher.hash_count();
    let r = send(json_body(
        client.post("/login"),
        json!({"email": "a@example.com", "password": "password"}),
    ))
    .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(sec.hasher.hash_count() - before, 2, "verify + rehash");
    let r = send(json_body(
        client.post("/login"),
        json!({"email": "a@example.com", "password": "password"}),
    ))
    .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(sec.hasher.hash_count() - before, 3, "then one per sign-in");
}
