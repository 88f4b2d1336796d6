//! Forged, replayed and malformed tokens: all exactly like no token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rocket::http::{Header, Status};

use crate::common::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs any payload bytes the way itsdangerous does, with `secret`.
fn sign(payload_part: &str, ts: u64, secret: &str, salt: &str) -> String {
    let key = gatehouse::core::token::derive_key(secret.as_bytes(), salt.as_bytes());
    let bytes = ts.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(8);
    let signed = format!("{payload_part}.{}", URL_SAFE_NO_PAD.encode(&bytes[first..]));
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[rocket::async_test]
async fn forged_and_foreign_tokens() {
    let app = app().await;
    let user = app.user("t@example.com").await;
    let uid = &user.fs_uniquifier;
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"ver":"5","uid":"{uid}","fs_paa":1.0,"exp":0}}"#
    ));
    let good = sign(&payload, now(), SECRET_KEY, "remember-salt");
    assert_eq!(
        app.get_with_token("/api/test", &good).await.status,
        Status::Ok,
        "control: a correct forgery needs the key"
    );
    for (name, token) in [
        (
            "wrong secret",
            sign(&payload, now(), "guessed-secret", "remember-salt"),
        ),
        (
            "wrong salt",
            sign(&payload, now(), SECRET_KEY, "other-salt"),
        ),
        (
            "signature stripped",
            format!("{payload}.{}.", URL_SAFE_NO_PAD.encode([1u8])),
        ),
        ("signature of another token", {
            let other = sign(&payload, now() - 1, SECRET_KEY, "remember-salt");
            let (head, _) = good.rsplit_once('.').unwrap();
            format!("{head}.{}", other.rsplit('.').next().unwrap())
        }),
        (
            "expired by exp",
            sign(
                &URL_SAFE_NO_PAD.encode(format!(r#"{{"ver":"5","uid":"{uid}","exp":1}}"#)),
                now(),
                SECRET_KEY,
                "remember-salt",
            ),
        ),
        (
            "no ver",
            sign(
                &URL_SAFE_NO_PAD.encode(format!(r#"{{"uid":"{uid}","exp":0}}"#)),
                now(),
                SECRET_KEY,
                "remember-salt",
            ),
        ),
        (
            "uid not a string",
            sign(
                &URL_SAFE_NO_PAD.encode(r#"{"ver":"5","uid":7,"exp":0}"#),
                now(),
                SECRET_KEY,
                "remember-salt",
            ),
        ),
        (
            "not JSON",
            sign(
                &URL_SAFE_NO_PAD.encode("garbage"),
                now(),
                SECRET_KEY,
                "remember-salt",
            ),
        ),
        (
            "dated in the future",
            sign(&payload, now() + 120, SECRET_KEY, "remember-salt"),
        ),
        (
            "too old",
            sign(&payload, now() - 86_401, SECRET_KEY, "remember-salt"),
        ),
    ] {
        let r = app.get_with_token("/api/test", &token).await;
        assert_eq!(r.status, Status::Unauthorized, "{name}");
        assert_eq!(
            r.errors(),
            vec!["You must sign in to view this resource."],
            "{name}"
        );
    }
}

/// A validly signed, compressed payload that inflates to 2 MiB is
/// refused without inflating it all.
#[rocket::async_test]
async fn a_signed_zlib_bomb_is_refused() {
    use std::io::Write;
    let app = app().await;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(br#"{"ver":"5","uid":""#).unwrap();
    z.write_all(&vec![b'a'; 2 * 1024 * 1024]).unwrap();
    z.write_all(br#"","exp":0}"#).unwrap();
    let compressed = format!(".{}", URL_SAFE_NO_PAD.encode(z.finish().unwrap()));
    assert!(compressed.len() < 4096, "the bomb fits in a token");
    let token = sign(&compressed, now(), SECRET_KEY, "remember-salt");
    let r = app.get_with_token("/api/test", &token).await;
    assert_eq!(r.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn revoked_and_deactivated_tokens_and_odd_transport() {
    let app = app().await;
    let user = app.user("r@example.com").await;
    let token = app.login_token("r@example.com", PASSWORD).await;
    // Whitespace around the value is tolerated; anything inside is not.
    let r = send(
        app.client
            .get("/api/test")
            .header(Header::new("Authentication-Token", format!("  {token}  "))),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    let r =
        send(accept_json(app.client.get("/api/test").header(
            Header::new("Authentication-Token", format!("{token}x")),
        )))
        .await;
    assert_eq!(r.status, Status::Unauthorized);
    // Query parameter: off by default, even with a good token.
    let r = send(accept_json(
        app.client.get(format!("/api/test?auth_token={token}")),
    ))
    .await;
    assert_eq!(r.status, Status::Unauthorized);

    app.dbh().set_active(user.id, false).await.unwrap();
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized,
        "deactivated"
    );
    app.dbh().set_active(user.id, true).await.unwrap();
    app.dbh()
        .rotate_uniquifier(user.id, &gatehouse::core::new_uniquifier(), None, None)
        .await
        .unwrap();
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized,
        "rotated"
    );
}
