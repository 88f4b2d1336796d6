//! Issue 6, items 2 and 3: logs and graceful shutdown, on the real binary.

use std::time::Duration;

use crate::common::*;
use crate::process::{env, Server};

const SECRET_PASSWORD: &str = "Sup3r-Secret-Pa55word";

#[test]
fn logs_have_one_line_per_request_and_never_a_secret() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fresh_db());
    let mut e = env(&db.url, "");
    e.push(("ROCKET_LOG_FORMAT".into(), "json".into()));
    let server = Server::start(&e);
    let json = [("Content-Type", "application/json")];

    let reg = server
        .request("POST", "/register?include_auth_token", &json,
            &format!(r#"{{"email":"log@example.com","password":"{SECRET_PASSWORD}","password_confirm":"{SECRET_PASSWORD}"}}"#))
        .unwrap();
    assert_eq!(reg.status, 200, "{}", reg.body);
    let token = reg.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = reg.cookie_pair("session").unwrap();
    let bad = server
        .request(
            "POST",
            "/login",
            &json,
            r#"{"email":"log@example.com","password":"wrong-Pa55word-xyz"}"#,
        )
        .unwrap();
    assert_eq!(bad.status, 400);
    let api = server
        .request(
            "GET",
            "/api/test",
            &[
                ("Authentication-Token", &token),
                ("X-Request-Id", "trace-me-42"),
            ],
            "",
        )
        .unwrap();
    assert_eq!(api.status, 200);
    assert_eq!(api.header("X-Request-Id"), Some("trace-me-42"));
    server
        .request("GET", "/api/me", &[("Cookie", &cookie)], "")
        .unwrap();
    // A 404 and a 401: one line each too (Rocket's own per-request notes,
    // "No matching routes" at error and the catcher at warn, are off).
    let missing = server.request("GET", "/no-such-page", &[], "").unwrap();
    assert_eq!(missing.status, 404);
    let refused = server
        .request("GET", "/api/test", &[("Accept", "application/json")], "")
        .unwrap();
    assert_eq!(refused.status, 401);
    let out = server
        .request(
            "POST",
            "/logout-everywhere",
            &[("Authentication-Token", &token)],
            "",
        )
        .unwrap();
    assert_eq!(out.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let logs = server.logs();

    // Nothing secret, in any form.
    let cookie_value = cookie.split_once('=').unwrap().1;
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("password", SECRET_PASSWORD),
        ("wrong password", "wrong-Pa55word-xyz"),
        ("token", token.as_str()),
        ("token signature", signature),
        ("cookie", cookie_value),
        ("secret key", SECRET_KEY),
        ("password salt", PASSWORD_SALT),
    ] {
        assert!(
            !logs.contains(secret),
            "{what} leaked into the logs:\n{logs}"
        );
    }
    assert!(
        !logs.contains("log@example.com"),
        "emails stay out of the logs too"
    );

    // One JSON object per line; one request line per request with its fields.
    let events: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 7, "{logs}");
    assert!(
        !logs.contains("No matching routes") && !logs.contains("Responding with"),
        "Rocket's per-request notes: {logs}"
    );
    // Nor the notes of the code Rocket generates for a route: "Request guard
    // `TokenUser` failed" came at warn with every 401 (now debug).
    assert!(
        !logs.contains("Request guard"),
        "route notes at the default level: {logs}"
    );
    let traced = requests
        .iter()
        .find(|r| r["request_id"] == "trace-me-42")
        .expect("request id logged");
    assert_eq!(traced["method"], "GET");
    assert_eq!(traced["path"], "/api/test");
    assert_eq!(traced["status"], 200);
    assert!(traced["latency_ms"].as_f64().unwrap() >= 0.0);
    let has = |event: &str, key: &str, value: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e[key].as_str() == Some(value))
    };
    assert!(has("register", "outcome", "ok"), "{logs}");
    assert!(has("login", "outcome", "failed"), "{logs}");
    assert!(has("rotation", "reason", "logout_everywhere"), "{logs}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "register" && e["user_id"] == 1),
        "users by id: {logs}"
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fresh_db());
    // One hashing slot at cost 12: four logins take about a second at idle,
    // so some are certainly accepted and still queued when SIGTERM lands 300
    // ms in. The grace is long because a loaded CI machine (hashing runs at
    // a low priority) can make each one take seconds.
    let mut e = env(
        &db.url,
        ",bcrypt_cost=12,hash_slots=1,hash_admission_ms=30000",
    );
    e.push(("ROCKET_SHUTDOWN".into(), "{grace=15,mercy=2}".into()));
    let mut server = Server::start(&e);
    let json = [("Content-Type", "application/json")];
    let reg = server
        .request(
            "POST",
            "/register?include_auth_token",
            &json,
            r#"{"email":"term@example.com","password":"password1","password_confirm":"password1"}"#,
        )
        .unwrap();
    assert_eq!(reg.status, 200, "{}", reg.body);
    let token = reg.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Slow requests (bcrypt queued on one slot) are in flight when SIGTERM lands.
    let port = server.port;
    let logins: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                crate::process::http(
                    port,
                    "POST",
                    "/login",
                    &[("Content-Type", "application/json")],
                    r#"{"email":"term@example.com","password":"password1"}"#,
                )
            })
        })
        .collect();
    // Fast writes race the shutdown: every 201 a client saw must be stored.
    let likes: Vec<_> = (0..4)
        .map(|worker| {
            let token = token.clone();
            std::thread::spawn(move || {
                let mut created = Vec::new();
                for i in 0..200 {
                    let article = worker * 1000 + i;
                    match crate::process::http(
                        port,
                        "POST",
                        &format!("/api/articles/{article}/likes"),
                        &[("Authentication-Token", &token)],
                        "",
                    ) {
                        Ok(r) if r.status == 201 => created.push(article),
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.body),
                        Err(_) => break, // refused: the server stopped accepting
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                created
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.sigterm();

    for l in logins {
        let r = l
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("an in-flight request was reset ({e}):\n{}", server.logs()));
        assert_eq!(r.status, 200, "in-flight login completes: {}", r.body);
    }
    let created: Vec<u32> = likes.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(!created.is_empty());
    let status = server.wait(Duration::from_secs(40));
    assert!(
        status.success(),
        "clean exit: {status:?}\n{}",
        server.logs()
    );

    // Every 201 is in the database, and every in-flight login was recorded.
    let check = rt.block_on(async {
        let client = client_on(&db.url, |f| f).await;
        let sec = client.rocket().state::<gatehouse::Security>().unwrap();
        let mut stored = 0;
        for a in &created {
            let r = send(client.get(format!("/api/articles/{a}/likes"))).await;
            stored += r.json()["likes"].as_i64().unwrap();
        }
        let tracking = sec.db.tracking(1).await.unwrap().unwrap();
        (stored, tracking.login_count)
    });
    assert_eq!(check.0, created.len() as i64, "no lost 201");
    assert_eq!(check.1, Some(5), "register + 4 in-flight logins recorded");
}

/// A link's token is a credential: the request line names the route by its
/// template, never with the token (the review of issue 12 found it logged).
#[test]
fn link_tokens_stay_out_of_the_request_log() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fresh_db());
    let mut e = env(&db.url, "");
    e.push(("ROCKET_LOG_FORMAT".into(), "json".into()));
    let server = Server::start(&e);
    let token = "WyJsb29rcy1saWtlLWEtdG9rZW4iXQ.aw8MjA.secret-looking-signature";
    for path in [format!("/reset/{token}"), format!("/change-email/{token}")] {
        let r = server
            .request("GET", &path, &[("Accept", "application/json")], "")
            .unwrap();
        assert_eq!(r.status, 400, "{}", r.body);
    }
    std::thread::sleep(Duration::from_millis(200));
    let logs = server.logs();
    assert!(!logs.contains("secret-looking-signature"), "{logs}");
    assert!(logs.contains(r#""path":"/reset/<token>""#), "{logs}");
    assert!(logs.contains(r#""path":"/change-email/<token>""#), "{logs}");
}
