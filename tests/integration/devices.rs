//! Issue 13: Flask-Security 5.9 refresh tokens (with a grace window and a
//! compare-and-set), devices (list, sign one out, sign out the others) and
//! personal access tokens.

use std::time::Duration;

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

/// A JSON sign-in with a token: the browser (cookies: session, fs_refresh)
/// and the auth token.
async fn token_sign_in(app: &TestApp, email: &str) -> (Browser, String) {
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": email, "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    (b, r.token())
}

/// POST /refresh-token with `refresh` as FS's cookie (and nothing else).
async fn refresh_with(app: &TestApp, refresh: &str) -> Resp {
    let mut b = Browser {
        jar: vec![rocket::http::Cookie::new("fs_refresh", refresh.to_owned())],
    };
    b.send(json_body(app.client.post("/refresh-token"), json!({})))
        .await
}

fn refresh_cookie(r: &Resp) -> String {
    r.cookie("fs_refresh")
        .unwrap_or_else(|| panic!("a refresh cookie: {:?}", r.set_cookies()))
        .value()
        .to_owned()
}

fn auth_token(r: &Resp) -> String {
    r.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {}", r.body))
        .to_owned()
}

async fn family_gen(app: &TestApp) -> Vec<i32> {
    crate::on_pool!(app, p => sqlx::query_scalar::<_, i32>(
        "SELECT gen FROM fs_refresh ORDER BY id").fetch_all(p).await.unwrap())
}

#[rocket::async_test]
async fn a_sign_in_with_a_token_hands_out_a_refresh_token_that_rotates() {
    let app = app().await;
    app.user("r@example.com").await;
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": "r@example.com", "password": PASSWORD}),
        ))
        .await;
    let raw = r.raw_cookie("fs_refresh");
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
        "{raw}"
    );
    let first = refresh_cookie(&r);
    // Without include_auth_token: no refresh token.
    let plain = app
        .post_json(
            "/login",
            json!({"email": "r@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(plain.cookie("fs_refresh").is_none());

    let r = refresh_with(&app, &first).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = auth_token(&r);
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Ok
    );
    let second = refresh_cookie(&r);
    assert_ne!(second, first);
    assert_eq!(family_gen(&app).await, [2]);
    let r = refresh_with(&app, &second).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(family_gen(&app).await, [3]);

    // Garbage and no token at all: FS's messages.
    let r = refresh_with(&app, "nonsense").await;
    assert_eq!(r.errors(), ["Refresh token is invalid (INVALID)"]);
    let r = app.post_json("/refresh-token", json!({})).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
}

/// Two tabs refresh with the same token at once: both succeed, with the
/// same new pair; the same token later (past the grace window) is reuse,
/// and the whole family dies.
#[rocket::async_test]
async fn the_grace_window_lets_two_tabs_refresh_and_reuse_kills_the_family() {
    let app = app().await;
    app.user("tabs@example.com").await;
    let (b, _) = token_sign_in(&app, "tabs@example.com").await;
    let first = b.get("fs_refresh").unwrap().value().to_owned();
    let (one, two) = tokio::join!(refresh_with(&app, &first), refresh_with(&app, &first));
    assert_eq!(one.status, Status::Ok, "{}", one.body);
    assert_eq!(two.status, Status::Ok, "{}", two.body);
    assert_eq!(auth_token(&one), auth_token(&two), "the same pair");
    assert_eq!(refresh_cookie(&one), refresh_cookie(&two));
    assert_eq!(family_gen(&app).await, [2], "one generation step");

    // Within the window, the old token still gets that same pair.
    app.clock.advance(Duration::from_secs(20));
    let again = refresh_with(&app, &first).await;
    assert_eq!(auth_token(&again), auth_token(&one));

    // Past it: reuse. Refused, and the current token dies with it.
    app.clock.advance(Duration::from_secs(15));
    let late = refresh_with(&app, &first).await;
    assert_eq!(late.errors(), ["Refresh token is invalid (GEN_MISMATCH)"]);
    let current = refresh_with(&app, &refresh_cookie(&one)).await;
    assert_eq!(current.errors(), ["Refresh token is invalid (REVOKED)"]);
}

/// With no grace (FS's behaviour), the second of two refreshes is reuse.
#[rocket::async_test]
async fn without_grace_a_replayed_refresh_token_revokes_the_family() {
    let app = app_with(|f| f.merge(("security.refresh_token_grace", 0))).await;
    app.user("nograce@example.com").await;
    let (b, _) = token_sign_in(&app, "nograce@example.com").await;
    let first = b.get("fs_refresh").unwrap().value().to_owned();
    let one = refresh_with(&app, &first).await;
    assert_eq!(one.status, Status::Ok);
    let replay = refresh_with(&app, &first).await;
    assert_eq!(replay.errors(), ["Refresh token is invalid (GEN_MISMATCH)"]);
    let r = refresh_with(&app, &refresh_cookie(&one)).await;
    assert_eq!(r.errors(), ["Refresh token is invalid (REVOKED)"]);
}

/// A refreshed token keeps the sign-in's time: never fresh enough for a
/// sensitive change (FS would make it fresh).
#[rocket::async_test]
async fn a_refreshed_token_keeps_the_original_sign_in_time() {
    let app = app_with(|f| f.merge(("security.freshness", 600))).await;
    app.user("fresh@example.com").await;
    let (b, _) = token_sign_in(&app, "fresh@example.com").await;
    app.clock.advance(Duration::from_secs(601));
    let r = refresh_with(&app, b.get("fs_refresh").unwrap().value()).await;
    let token = auth_token(&r);
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Ok
    );
    let r = send(accept_json(token_header(
        app.client.get("/tf-setup"),
        &token,
    )))
    .await;
    assert_eq!(r.status, Status::Unauthorized, "{}", r.body);
    assert_eq!(r.json()["response"]["reauth_required"], true);
}

#[rocket::async_test]
async fn refresh_tokens_expire_when_idle_and_die_with_the_account_s_sign_out() {
    let app = app().await;
    app.user("idle@example.com").await;
    let (b, token) = token_sign_in(&app, "idle@example.com").await;
    let first = b.get("fs_refresh").unwrap().value().to_owned();
    app.clock.advance(Duration::from_secs(7 * 86_400 + 60));
    let r = refresh_with(&app, &first).await;
    assert_eq!(r.errors(), ["Refresh token is invalid (EXPIRED)"]);

    let (b, token2) = token_sign_in(&app, "idle@example.com").await;
    let second = b.get("fs_refresh").unwrap().value().to_owned();
    let _ = token;
    let r = send(token_header(
        json_body(app.client.post("/logout-everywhere"), json!({})),
        &token2,
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let r = refresh_with(&app, &second).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
}

/// FS 5.9: signing out with the refresh token revokes its family; FS's
/// JSON mode (no cookie name) hands the token out in the answer.
#[rocket::async_test]
async fn sign_out_revokes_the_refresh_family_and_the_json_mode_works() {
    let app = app_with(|f| f.merge(("security.refresh_token_cookie_name", ""))).await;
    app.user("json@example.com").await;
    let r = app
        .post_json(
            "/login?include_auth_token",
            json!({"email": "json@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(r.cookie("fs_refresh").is_none());
    let refresh = r.json()["response"]["user"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_json("/refresh-token", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let next = r.json()["response"]["user"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_json("/logout", json!({"refresh_token": next}))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let r = app
        .post_json("/refresh-token", json!({"refresh_token": next}))
        .await;
    assert_eq!(r.errors(), ["Refresh token is invalid (REVOKED)"]);
}

fn csrf_delete<'a>(
    client: &'a rocket::local::asynchronous::Client,
    path: String,
    b: &Browser,
) -> rocket::local::asynchronous::LocalRequest<'a> {
    accept_json(client.delete(path)).header(Header::new("X-CSRF-Token", b.xsrf()))
}

/// Devices: each sign-in is one; a browser lists them and signs one out;
/// its session, token and refresh token stop at once, the others live on.
#[rocket::async_test]
async fn devices_are_listed_and_signed_out_one_by_one() {
    let app = app().await;
    app.user("dev@example.com").await;
    let mut laptop = Browser::default();
    laptop
        .send(
            json_body(
                app.client.post("/login"),
                json!({"email": "dev@example.com", "password": PASSWORD}),
            )
            .header(Header::new(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            )),
        )
        .await;
    let (phone, phone_token) = token_sign_in(&app, "dev@example.com").await;
    let phone_refresh = phone.get("fs_refresh").unwrap().value().to_owned();

    // Seen again two minutes later: its "last seen" moves (a browser's
    // session records its use at most once a minute).
    app.clock.advance(Duration::from_secs(120));
    let r = laptop.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Ok);
    // So does a token's (at most once a minute too).
    let r = app
        .client
        .get("/api/test")
        .header(Header::new("Authentication-Token", phone_token.clone()))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let r = laptop.send(accept_json(app.client.get("/sessions"))).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let list = r.json()["response"]["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let mine: Vec<_> = list.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["label"], "Firefox on Linux");
    let (created, seen) = (
        mine[0]["created_at"].as_i64().unwrap(),
        mine[0]["last_used_at"].as_i64().unwrap(),
    );
    assert!(
        seen >= created + 120,
        "last seen {seen}, signed in {created}"
    );
    let other = list.iter().find(|d| d["current"] == false).unwrap();
    assert!(
        other["last_used_at"].as_i64().unwrap() >= other["created_at"].as_i64().unwrap() + 120,
        "the phone's last use: {other}"
    );
    let phone_id = other["id"].as_str().unwrap().to_owned();
    // The token of a device knows it is that device.
    let r = send(accept_json(token_header(
        app.client.get("/sessions"),
        &phone_token,
    )))
    .await;
    let current: Vec<_> = r.json()["response"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["current"] == true)
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(current, [json!(phone_id)]);

    // Without the CSRF header a cookie request cannot sign a device out.
    let r = laptop
        .send(accept_json(
            app.client.delete(format!("/sessions/{phone_id}")),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    let r = laptop
        .send(csrf_delete(
            &app.client,
            format!("/sessions/{phone_id}"),
            &laptop,
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/me", &phone_token).await.status,
        Status::Unauthorized,
        "the phone's token stops at once"
    );
    let r = refresh_with(&app, &phone_refresh).await;
    assert_eq!(r.errors(), ["Refresh token is invalid (REVOKED)"]);
    let mut phone = phone;
    let r = phone.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Unauthorized, "and its session");
    let r = laptop.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Ok, "the laptop lives on");
    let r = laptop
        .send(csrf_delete(
            &app.client,
            format!("/sessions/{phone_id}"),
            &laptop,
        ))
        .await;
    assert_eq!(r.status, Status::NotFound);

    // Sign out every other device.
    let (_, t1) = token_sign_in(&app, "dev@example.com").await;
    let (_, t2) = token_sign_in(&app, "dev@example.com").await;
    let r = laptop
        .send(csrf_delete(&app.client, "/sessions".into(), &laptop))
        .await;
    assert_eq!(r.json()["response"]["signed_out"], 2, "{}", r.body);
    for t in [t1, t2] {
        assert_eq!(
            app.get_with_token("/api/me", &t).await.status,
            Status::Unauthorized
        );
    }
    let r = laptop.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Ok);
    // Another user's device cannot be named.
    app.user("other@example.com").await;
    let (other, _) = token_sign_in(&app, "other@example.com").await;
    let _ = other;
    let r = laptop.send(accept_json(app.client.get("/sessions"))).await;
    assert_eq!(
        r.json()["response"]["sessions"].as_array().unwrap().len(),
        1
    );
}

/// A device signed out on one instance is refused by another on the very
/// next request (both read the device row).
#[rocket::async_test]
async fn a_device_signed_out_on_one_instance_is_refused_by_the_other() {
    let app = app().await;
    app.user("two@example.com").await;
    let other = client_on(&app.db.url, |f| f).await;
    let (_, token) = token_sign_in(&app, "two@example.com").await;
    assert_eq!(
        send(token_header(other.get("/api/me"), &token))
            .await
            .status,
        Status::Ok
    );
    let r = send(accept_json(token_header(other.get("/sessions"), &token))).await;
    let id = r.json()["response"]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(accept_json(token_header(
        other.delete(format!("/sessions/{id}")),
        &token,
    )))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Unauthorized
    );
}

// ---- personal access tokens ---------------------------------------------------

async fn create_pat(app: &TestApp, auth: &str, body: serde_json::Value) -> Resp {
    send(token_header(
        json_body(app.client.post("/tokens"), body),
        auth,
    ))
    .await
}

#[rocket::async_test]
async fn personal_access_tokens_work_until_revoked_or_expired() {
    let app = app().await;
    app.user_with("pat@example.com", PASSWORD, &["admin", "reader"])
        .await;
    let login = app.login_token("pat@example.com", PASSWORD).await;
    let r = create_pat(
        &app,
        &login,
        json!({"name": "CI deploy", "expires_in_days": 2}),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let made = r.json()["response"]["token"].clone();
    let pat = made["token"].as_str().unwrap().to_owned();
    assert!(pat.starts_with("ghpat_"), "{pat}");
    let id = made["id"].as_str().unwrap().to_owned();

    // Header and Bearer.
    assert_eq!(app.get_with_token("/api/me", &pat).await.status, Status::Ok);
    let r = send(
        app.client
            .get("/api/admin/users")
            .header(Header::new("Authorization", format!("Bearer {pat}"))),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    // Stored hashed: the secret is nowhere in the database.
    let secret = pat.rsplit('_').next().unwrap().to_owned();
    let stored: String = crate::on_pool!(&app, p => sqlx::query_scalar(
        "SELECT secret_hash FROM gh_pat WHERE id = $1").bind(&id).fetch_one(p).await.unwrap());
    assert!(!stored.contains(&secret));
    // A wrong secret with a real id: refused.
    let forged = format!("ghpat_{id}_{}", "0".repeat(64));
    assert_eq!(
        app.get_with_token("/api/me", &forged).await.status,
        Status::Unauthorized
    );
    // Listed, never with its secret, with its last use.
    let r = app.get_with_token("/tokens", &login).await;
    let list = r.json()["response"]["tokens"].clone();
    assert_eq!(list[0]["name"], "CI deploy");
    assert!(list[0]["last_used_at"].is_i64(), "{list}");
    assert!(!r.body.contains(&secret));
    // A personal access token is never "fresh": it cannot make another.
    let r = create_pat(&app, &pat, json!({"name": "again"})).await;
    assert_eq!(r.status, Status::Unauthorized, "{}", r.body);

    // Expiry.
    app.clock.advance(Duration::from_secs(2 * 86_400 + 1));
    assert_eq!(
        app.get_with_token("/api/me", &pat).await.status,
        Status::Unauthorized
    );
    // Revocation.
    let login = app.login_token("pat@example.com", PASSWORD).await;
    let r = create_pat(&app, &login, json!({"name": "short"})).await;
    let pat2 = r.json()["response"]["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id2 = r.json()["response"]["token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get_with_token("/api/me", &pat2).await.status,
        Status::Ok
    );
    let r = send(token_header(
        app.client.delete(format!("/tokens/{id2}")),
        &login,
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/me", &pat2).await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn a_limited_token_uses_only_its_roles() {
    let app = app().await;
    app.user_with("scope@example.com", PASSWORD, &["admin", "reader"])
        .await;
    let login = app.login_token("scope@example.com", PASSWORD).await;
    let r = create_pat(
        &app,
        &login,
        json!({"name": "read only", "roles": ["reader"]}),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let pat = r.json()["response"]["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get_with_token("/api/me", &pat).await;
    assert_eq!(r.json()["roles"], json!(["reader"]), "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/admin/users", &pat).await.status,
        Status::Forbidden
    );
    assert_eq!(
        app.get_with_token("/api/admin/users", &login).await.status,
        Status::Ok
    );
    // Only roles the user has; sensible names and lifetimes.
    let r = create_pat(&app, &login, json!({"name": "x", "roles": ["superuser"]})).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    let r = create_pat(&app, &login, json!({"name": "", "expires_in_days": 9999})).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    let fields = r.json()["response"]["field_errors"].clone();
    assert!(
        fields.get("name").is_some() && fields.get("expires_in_days").is_some(),
        "{fields}"
    );
}

// ---- the review's findings, each pinned -------------------------------------

/// Introspection answers as every request does: a signed-out device's
/// token is inactive; a personal access token is active with its scope.
#[rocket::async_test]
async fn introspection_sees_devices_and_personal_tokens() {
    use base64::Engine;
    let secret = "a-client-secret-long-enough";
    let app = app_with(|f| {
        f.merge((
            "security.introspection_clients",
            vec![json!({"id": "svc", "secret": secret})],
        ))
    })
    .await;
    app.user_with("intro@example.com", PASSWORD, &["admin", "reader"])
        .await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("svc:{secret}"));
    let introspect = |token: String| {
        let req = app
            .client
            .post("/introspect")
            .header(rocket::http::ContentType::Form)
            .header(Header::new("Authorization", format!("Basic {b64}")))
            .body(format!("token={}", enc(&token)));
        send(req)
    };
    let (_, token) = token_sign_in(&app, "intro@example.com").await;
    assert_eq!(introspect(token.clone()).await.json()["active"], true);
    let r = send(accept_json(token_header(
        app.client.delete("/sessions"),
        &token,
    )))
    .await;
    assert_eq!(r.status, Status::Ok);
    let r = send(accept_json(token_header(
        app.client.get("/sessions"),
        &token,
    )))
    .await;
    let id = r.json()["response"]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(accept_json(token_header(
        app.client.delete(format!("/sessions/{id}")),
        &token,
    )))
    .await;
    assert_eq!(
        introspect(token).await.json()["active"],
        false,
        "signed out"
    );

    let login = app.login_token("intro@example.com", PASSWORD).await;
    let r = create_pat(&app, &login, json!({"name": "svc", "roles": ["reader"]})).await;
    let pat = r.json()["response"]["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = introspect(pat).await.json();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["roles"], json!(["reader"]), "its scope only: {v}");
}

/// A second sign-in in the same browser (here /verify with a token) keeps
/// the device but revokes the refresh family it had: signing the device
/// out then leaves no refresh token behind.
#[rocket::async_test]
async fn a_device_keeps_one_refresh_family() {
    let app = app().await;
    app.user("one@example.com").await;
    let (mut b, _) = token_sign_in(&app, "one@example.com").await;
    let first = b.get("fs_refresh").unwrap().value().to_owned();
    let r = b
        .send(
            json_body(
                app.client.post("/verify?include_auth_token"),
                json!({"password": PASSWORD}),
            )
            .header(Header::new("X-CSRF-Token", b.xsrf())),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let r = refresh_with(&app, &first).await;
    assert_eq!(r.errors(), ["Refresh token is invalid (REVOKED)"]);
    let second = b.get("fs_refresh").unwrap().value().to_owned();
    let r = b
        .send(
            accept_json(app.client.delete("/sessions"))
                .header(Header::new("X-CSRF-Token", b.xsrf())),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    let r = b.send(accept_json(app.client.get("/sessions"))).await;
    let id = r.json()["response"]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.send(
        accept_json(app.client.delete(format!("/sessions/{id}")))
            .header(Header::new("X-CSRF-Token", b.xsrf())),
    )
    .await;
    let r = refresh_with(&app, &second).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
}

/// Reuse of an old refresh token also stops the auth tokens its family's
/// device minted: the copier's as well as the owner's.
#[rocket::async_test]
async fn reuse_stops_the_family_s_auth_tokens_too() {
    let app = app_with(|f| f.merge(("security.refresh_token_grace", 0))).await;
    let _ = app.user("stolen@example.com").await;
    let (b, _) = token_sign_in(&app, "stolen@example.com").await;
    let first = b.get("fs_refresh").unwrap().value().to_owned();
    let thief = refresh_with(&app, &first).await;
    let thief_token = auth_token(&thief);
    assert_eq!(
        app.get_with_token("/api/me", &thief_token).await.status,
        Status::Ok
    );
    let owner = refresh_with(&app, &first).await;
    assert_eq!(owner.errors(), ["Refresh token is invalid (GEN_MISMATCH)"]);
    assert_eq!(
        app.get_with_token("/api/me", &thief_token).await.status,
        Status::Unauthorized
    );
}

/// A personal access token is for APIs: it cannot list or sign out
/// devices, nor list or revoke tokens; an empty scope means no roles; and
/// it dies when the account signs out everywhere.
#[rocket::async_test]
async fn personal_tokens_do_not_manage_the_account() {
    let app = app().await;
    app.user_with("own@example.com", PASSWORD, &["admin"]).await;
    let login = app.login_token("own@example.com", PASSWORD).await;
    let r = create_pat(&app, &login, json!({"name": "all"})).await;
    let pat = r.json()["response"]["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        ("GET", "/sessions"),
        ("DELETE", "/sessions"),
        ("GET", "/tokens"),
    ] {
        let req = match method {
            "GET" => app.client.get(path),
            _ => app.client.delete(path),
        };
        let r = send(accept_json(token_header(req, &pat))).await;
        assert_eq!(r.status, Status::Forbidden, "{method} {path}: {}", r.body);
    }
    assert_eq!(
        app.get_with_token("/api/me", &login).await.status,
        Status::Ok,
        "nothing was signed out"
    );
    let r = create_pat(&app, &login, json!({"name": "none", "roles": []})).await;
    let none = r.json()["response"]["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get_with_token("/api/me", &none).await.json()["roles"],
        json!([])
    );
    assert_eq!(
        app.get_with_token("/api/admin/users", &none).await.status,
        Status::Forbidden
    );
    let r = send(token_header(
        json_body(app.client.post("/logout-everywhere"), json!({})),
        &login,
    ))
    .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(
        app.get_with_token("/api/me", &pat).await.status,
        Status::Unauthorized,
        "signed out everywhere"
    );
}

/// A family FS made (no device here), refreshed twice at once: both get
/// the same pair, one device; and FS's nullable `gen` reads as 1.
#[rocket::async_test]
async fn families_fs_made_are_adopted_once_and_a_null_gen_works() {
    let app = app().await;
    let user = app.user("fsfam@example.com").await;
    let token = app.sec().new_refresh(&user, None).await.unwrap();
    crate::on_pool!(&app, p => sqlx::query("UPDATE fs_refresh SET gen = NULL")
        .execute(p).await.map(|_| ()).unwrap());
    let (one, two) = tokio::join!(refresh_with(&app, &token), refresh_with(&app, &token));
    assert_eq!(one.status, Status::Ok, "{}", one.body);
    assert_eq!(two.status, Status::Ok, "{}", two.body);
    assert_eq!(auth_token(&one), auth_token(&two));
    assert_eq!(family_gen(&app).await, [2]);
    let devices: i64 = crate::on_pool!(&app, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM gh_device").fetch_one(p).await.unwrap());
    assert_eq!(devices, 1);
}
