//! Flask-Security-Too compatibility: vectors made by FS itself, and a
//! database created the way FS creates it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gatehouse::core::password::{prehash, Hasher};
use gatehouse::core::token::{derive_key, TokenError, TokenSigner};
use hmac::{Hmac, KeyInit, Mac};
use rocket::http::Status;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::common::*;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../fixtures/vectors.json")).unwrap()
}

fn signer(v: &Value) -> TokenSigner {
    TokenSigner::new(
        &SecretString::from(v["secret_key"].as_str().unwrap().to_owned()),
        v["salt"].as_str().unwrap(),
    )
}

#[test]
fn derived_key_matches_itsdangerous() {
    let v = &vectors()["tokens"][0];
    let key = derive_key(
        v["secret_key"].as_str().unwrap().as_bytes(),
        v["salt"].as_str().unwrap().as_bytes(),
    );
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, v["derived_key_hex"].as_str().unwrap());
}

#[test]
fn every_fs_token_vector_verifies_with_an_injected_clock() {
    for v in vectors()["tokens"].as_array().unwrap() {
        let ts = v["timestamp"].as_u64().unwrap();
        let payload: Value = serde_json::from_str(v["payload_json"].as_str().unwrap()).unwrap();
        let uid = signer(v)
            .verify(v["token"].as_str().unwrap(), ts + 10, 86400)
            .unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(uid, payload["uid"].as_str().unwrap());
        // And the clock matters: too old, and from the future, are refused.
        let token = v["token"].as_str().unwrap();
        assert_eq!(
            signer(v).verify(token, ts + 86401, 86400),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer(v).verify(token, ts - 1, 86400),
            Err(TokenError::FromTheFuture)
        );
    }
}

#[test]
fn minted_token_is_byte_identical_to_fs() {
    let v = &vectors()["tokens"][0];
    let payload: Value = serde_json::from_str(v["payload_json"].as_str().unwrap()).unwrap();
    let minted = signer(v).mint(
        payload["uid"].as_str().unwrap(),
        payload["fs_paa"].as_f64().unwrap(),
        v["timestamp"].as_u64().unwrap(),
    );
    assert_eq!(minted, v["token"].as_str().unwrap());
    let ts_part = minted.split('.').nth(1).unwrap();
    assert_eq!(ts_part, v["timestamp_b64"].as_str().unwrap());
}

#[test]
fn tampered_vectors_are_refused() {
    for v in vectors()["tokens"].as_array().unwrap() {
        let ts = v["timestamp"].as_u64().unwrap();
        let token = v["token"].as_str().unwrap();
        let mut bytes = token.as_bytes().to_vec();
        let i = bytes.len() - 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            signer(v).verify(&tampered, ts, 86400),
            Err(TokenError::BadSignature)
        );
        let other = TokenSigner::new(&SecretString::from("another-key"), "remember-salt");
        assert_eq!(
            other.verify(token, ts, 86400),
            Err(TokenError::BadSignature)
        );
    }
}

#[test]
fn fs_password_prehash_vector() {
    let p = &vectors()["passwords"][0];
    let salt = SecretString::from(p["password_salt"].as_str().unwrap().to_owned());
    let pre = prehash(&salt, p["password"].as_str().unwrap());
    assert_eq!(pre, p["prehash_88"].as_str().unwrap());
    assert_eq!(&pre[..72], p["bcrypt_input_72"].as_str().unwrap());
}

#[rocket::async_test]
async fn fs_stored_hashes_verify_and_ours_verify_in_the_fs_recipe() {
    let p = &vectors()["passwords"][0];
    let salt = SecretString::from(p["password_salt"].as_str().unwrap().to_owned());
    let hasher = Hasher::new(salt, 4, 2, std::time::Duration::from_secs(10)).unwrap();
    for stored in p["stored_hashes_that_verify"].as_array().unwrap() {
        assert!(hasher.verify("password", stored.as_str()).await.unwrap());
        assert!(!hasher.verify("passwore", stored.as_str()).await.unwrap());
    }
    // Ours, checked with an independent implementation of FS's recipe:
    // bcrypt over base64(HMAC-SHA512(salt, password)), truncated at 72 bytes.
    let ours = hasher.hash("password").await.unwrap();
    assert!(ours.starts_with("$2b$04$"), "{ours}");
    let mut mac = <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(b"really super secret").unwrap();
    mac.update(b"password");
    let fs_input = STANDARD.encode(mac.finalize().into_bytes());
    assert!(bcrypt::verify(&fs_input.as_bytes()[..72], &ours).unwrap());
}

/// Builds a SQLite database exactly as FS creates it (its DDL, integer
/// booleans, text datetimes, a hash FS made), then opens it with gatehouse.
#[rocket::async_test]
async fn a_database_created_by_flask_security_opens_and_its_users_sign_in() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let fs_hash = vectors()["passwords"][0]["stored_hashes_that_verify"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let users = [
        FsUser {
            id: 1,
            email: "flask@example.com",
            password: &fs_hash,
            active: true,
            uniquifier: "68d9e7faa8a64b22a40a92182de715fc",
        },
        FsUser {
            id: 2,
            email: "off@example.com",
            password: &fs_hash,
            active: false,
            uniquifier: "0123456789abcdef0123456789abcdef",
        },
    ];
    let url = fs_sqlite_database(dir.path(), &users, &[("admin", "read,write", &[1])]).await;
    // The FS app's secrets: the vector's password salt.
    let client = client_on(&url, |f| {
        f.merge(("security.password_salt", "really super secret"))
            .merge(("security.secret_key", "super-secret-key"))
    })
    .await;
    let r = send(json_body(
        client.post("/login?include_auth_token"),
        json!({"email": "FLASK@example.com", "password": "password"}),
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = r.token();
    let me = send(token_header(client.get("/api/me"), &token)).await;
    assert_eq!(me.status, Status::Ok);
    assert_eq!(me.json()["email"], "flask@example.com");
    assert_eq!(me.json()["roles"], json!(["admin"]));
    let admin = send(token_header(client.get("/api/admin/users"), &token)).await;
    assert_eq!(admin.status, Status::Ok, "{}", admin.body);

    // The inactive FS user: right password, disabled message.
    let r = send(json_body(
        client.post("/login"),
        json!({"email": "off@example.com", "password": "password"}),
    ))
    .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), vec!["Account is disabled."]);

    // Tracking was written the way FS writes it.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (count, at, active): (i64, String, i64) =
        sqlx::query_as("SELECT login_count, current_login_at, active FROM user WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(count, 4);
    assert_eq!(active, 1);
    assert_eq!(at.len(), "2025-01-02 03:04:05.678901".len(), "{at}");
    // A token minted by FS for this user (FS vector: same uid and secret) is
    // accepted while fresh: verify through the signer with the vector clock.
    let v = &vectors()["tokens"][0];
    let uid = signer(v)
        .verify(
            v["token"].as_str().unwrap(),
            v["timestamp"].as_u64().unwrap(),
            86400,
        )
        .unwrap();
    assert_eq!(uid, "68d9e7faa8a64b22a40a92182de715fc");
}

/// A token gatehouse mints is accepted by the FS recipe (checked here with
/// an independent HMAC), and a token minted for the FS database's user by
/// the FS key works against gatehouse's API.
#[rocket::async_test]
async fn tokens_cross_between_fs_and_gatehouse() {
    let app = app().await;
    let user = app.user("cross@example.com").await;
    let fs_signer = TokenSigner::new(&SecretString::from(SECRET_KEY), "remember-salt");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fs_token = fs_signer.mint(&user.fs_uniquifier, now as f64, now);
    let r = app.get_with_token("/api/test", &fs_token).await;
    assert_eq!(r.status, Status::Ok);

    let ours = app.login_token("cross@example.com", PASSWORD).await;
    let (signed, sig) = ours.rsplit_once('.').unwrap();
    let key = derive_key(SECRET_KEY.as_bytes(), b"remember-salt");
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()), sig);
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["ver"], "5");
    assert_eq!(payload["uid"], user.fs_uniquifier.as_str());
    assert_eq!(payload["exp"], 0);
    assert!(payload["fs_paa"].as_f64().unwrap() > 1.7e9);
    // FS's four claims, then gatehouse's device (FS ignores a claim it
    // does not know; the oracle proves FS takes these tokens).
    let raw = String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(signed.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(raw.starts_with(r#"{"ver":"5","uid":"#), "{raw}");
    assert!(raw.contains(r#","exp":0,"gh_dev":""#), "{raw}");
    assert_eq!(payload.as_object().unwrap().len(), 5);
    assert_eq!(payload["gh_dev"].as_str().map(str::len), Some(32));
}
