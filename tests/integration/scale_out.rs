//! Issue 5, item 4: several stateless instances on one database. Two real
//! processes on different ports share the database and the secrets; what A
//! issues works on B, and what A revokes is refused by B on the very next
//! request.

use crate::common::*;
use crate::process::{env, HttpResp, Server};

const ROUNDS: usize = 1000;

/// Signs `email` in on `server` with a token: the response, the token and
/// the session cookie.
fn sign_in(server: &Server, email: &str, round: usize) -> (HttpResp, String, String) {
    let body = format!(r#"{{"email":"{email}","password":"password1"}}"#);
    let login = server
        .request(
            "POST",
            "/login?include_auth_token",
            &[("Content-Type", "application/json")],
            &body,
        )
        .unwrap();
    assert_eq!(login.status, 200, "round {round}: {}", login.body);
    let token = login.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = login.cookie_pair("session").unwrap();
    (login, token, cookie)
}

/// How many of a revoked token and session `server` still accepts (0, 1 or
/// 2); anything but 200 or 401 fails the test.
fn stale_acceptances(server: &Server, token: &str, cookie: &str, round: usize) -> usize {
    let t = server
        .request("GET", "/api/test", &[("Authentication-Token", token)], "")
        .unwrap();
    let c = server
        .request(
            "GET",
            "/api/me",
            &[("Cookie", cookie), ("Accept", "application/json")],
            "",
        )
        .unwrap();
    [&t, &c]
        .iter()
        .filter(|r| match r.status {
            401 => false,
            200 => true,
            other => panic!("round {round}: unexpected {other}: {}", r.body),
        })
        .count()
}

#[test]
fn revocation_on_one_instance_is_immediate_on_the_other() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fresh_db());
    // High address limit: this test signs in a thousand times from 127.0.0.1.
    let e = env(&db.url, ",ip_limit_per_minute=100000");
    let a = Server::start(&e);
    let b = Server::start(&e);
    let json = [("Content-Type", "application/json")];
    let reg = a
        .request("POST", "/register", &json, r#"{"email":"multi@example.com","password":"password1","password_confirm":"password1"}"#)
        .unwrap();
    assert_eq!(reg.status, 200, "{}", reg.body);

    let mut stale = 0;
    for round in 0..ROUNDS {
        let (login, token, cookie) = sign_in(&a, "multi@example.com", round);
        let xsrf = login.cookie_pair("XSRF-TOKEN").unwrap();
        let xsrf_value = xsrf.split_once('=').unwrap().1.to_owned();

        // Issued by A, accepted by B.
        assert_eq!(
            b.request("GET", "/api/test", &[("Authentication-Token", &token)], "")
                .unwrap()
                .status,
            200,
            "round {round}"
        );
        assert_eq!(
            b.request(
                "GET",
                "/api/me",
                &[("Cookie", &cookie), ("Accept", "application/json")],
                ""
            )
            .unwrap()
            .status,
            200
        );

        // Revoked on A (by session cookie, with CSRF), refused by B at once.
        let both = format!("{cookie}; {xsrf}");
        let out = a
            .request(
                "POST",
                "/logout-everywhere",
                &[
                    ("Cookie", &both),
                    ("X-XSRF-Token", &xsrf_value),
                    ("Accept", "application/json"),
                ],
                "",
            )
            .unwrap();
        assert_eq!(out.status, 200, "round {round}: {}", out.body);
        stale += stale_acceptances(&b, &token, &cookie, round);
    }
    assert_eq!(stale, 0, "stale acceptances in {ROUNDS} rounds");
}

/// Issue 13: signing one device out on one instance stops that device's
/// token and session on the other at once, and leaves the other device
/// signed in everywhere. Real processes, a shared database.
#[test]
fn a_device_signed_out_on_one_instance_stops_at_once_on_the_other() {
    const DEVICE_ROUNDS: usize = 200;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fresh_db());
    let e = env(&db.url, ",ip_limit_per_minute=100000");
    let a = Server::start(&e);
    let b = Server::start(&e);
    let json = [("Content-Type", "application/json")];
    let reg = a
        .request("POST", "/register?include_auth_token", &json, r#"{"email":"devices@example.com","password":"password1","password_confirm":"password1"}"#)
        .unwrap();
    assert_eq!(reg.status, 200, "{}", reg.body);
    // The device that stays.
    let keeper = reg.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stale = 0;
    for round in 0..DEVICE_ROUNDS {
        let (_, token, cookie) = sign_in(&a, "devices@example.com", round);
        let auth = [
            ("Authentication-Token", token.as_str()),
            ("Accept", "application/json"),
        ];
        let list = b.request("GET", "/sessions", &auth, "").unwrap();
        assert_eq!(list.status, 200, "round {round}: {}", list.body);
        let id = list.json()["response"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["current"] == true)
            .expect("this device is listed")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Signed out through B, by the keeper's token.
        let keep = [
            ("Authentication-Token", keeper.as_str()),
            ("Accept", "application/json"),
        ];
        let out = b
            .request("DELETE", &format!("/sessions/{id}"), &keep, "")
            .unwrap();
        assert_eq!(out.status, 200, "round {round}: {}", out.body);
        stale += stale_acceptances(&a, &token, &cookie, round);
        let k = a
            .request("GET", "/api/test", &[("Authentication-Token", &keeper)], "")
            .unwrap();
        assert_eq!(
            k.status, 200,
            "round {round}: the other device stays signed in"
        );
    }
    assert_eq!(stale, 0, "stale acceptances in {DEVICE_ROUNDS} rounds");
}
