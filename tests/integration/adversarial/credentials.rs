//! Brute force, enumeration and registration races.

use rocket::http::{Header, Status};
use serde_json::json;

use gatehouse::config::ThrottleRule;

use crate::common::*;
use crate::register::futures_join_all;

/// A small schedule for the tests that drive the throttle with their own clock.
const RULE: ThrottleRule = ThrottleRule {
    limit: 3,
    window: 900,
    base_delay: 2,
    max_delay: 8,
};
const T0: i64 = 1_000_000;

#[rocket::async_test]
async fn an_account_backs_off_after_ten_failures_without_hashing() {
    let app = app().await;
    app.user("victim@example.com").await;
    for i in 1..=10 {
        let r = app.post_json("/login", wrong("victim@example.com")).await;
        assert_eq!(r.status, Status::BadRequest, "attempt {i} is checked");
    }
    let before = app.sec().hasher.hash_count();
    let r = app
        .post_json(
            "/login",
            json!({"email": "VICTIM@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        r.status,
        Status::TooManyRequests,
        "the 11th attempt waits, whatever the case of the email"
    );
    // The clock has whole seconds: the 10th attempt armed a 2 s backoff, and
    // 1 s of it is left if a second boundary passed since (a loaded machine).
    let wait = r.header("Retry-After").expect("Retry-After");
    let expected = match wait {
        "2" => "Too many attempts. Try again in 2 seconds.",
        "1" => "Too many attempts. Try again in 1 second.",
        other => panic!("Retry-After {other}: the backoff is 2 s"),
    };
    assert_eq!(r.json()["meta"]["code"], 429);
    assert_eq!(r.errors(), vec![expected]);
    assert_eq!(
        app.sec().hasher.hash_count(),
        before,
        "refused before any hashing"
    );
    // Other accounts are not affected.
    app.user("other@example.com").await;
    app.login_token("other@example.com", PASSWORD).await;

    // Soft and time-boxed: after the wait, the real user gets in, which
    // clears the count.
    app.clock.advance(std::time::Duration::from_millis(2100));
    app.login_token("victim@example.com", PASSWORD).await;
    let r = app.post_json("/login", wrong("victim@example.com")).await;
    assert_eq!(
        r.status,
        Status::BadRequest,
        "the count starts again after a success"
    );
}

/// The schedule, driven with an injected clock through the real database:
/// free attempts, then one per backoff, doubling to the cap; a new window
/// starts clean.
#[rocket::async_test]
async fn backoff_rises_and_is_capped() {
    let app = app().await;
    let db = app.dbh();
    let (rule, t0) = (RULE, T0);
    for i in 1..=3 {
        assert!(
            db.throttle("k", t0, rule).await.unwrap().allowed,
            "free attempt {i}"
        );
    }
    let s = db.throttle("k", t0, rule).await.unwrap();
    assert!(!s.allowed);
    assert_eq!(s.next_allowed, t0 + 2);
    assert!(
        !db.throttle("k", t0 + 1, rule).await.unwrap().allowed,
        "still waiting"
    );
    let mut now = t0 + 2;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let s = db.throttle("k", now, rule).await.unwrap();
        assert!(s.allowed, "one attempt let through at {now}");
        let refused = db.throttle("k", now, rule).await.unwrap();
        assert!(!refused.allowed);
        waits.push(refused.next_allowed - now);
        now = refused.next_allowed;
    }
    assert_eq!(waits, vec![4, 8, 8, 8], "doubling, capped");
    let fresh = db.throttle("k", t0 + 901, rule).await.unwrap();
    assert!(fresh.allowed && fresh.attempts == 1, "a new window");
}

/// Keys are attacker-chosen (any email): expired rows must not pile up.
#[rocket::async_test]
async fn expired_throttle_rows_are_purged() {
    let app = app().await;
    let db = app.dbh();
    let (rule, t0) = (RULE, T0);
    for i in 0..50 {
        db.throttle(&format!("acct:spray{i}@example.com"), t0, rule)
            .await
            .unwrap();
    }
    for _ in 0..4 {
        db.throttle("acct:backing-off@example.com", t0 + 800, rule)
            .await
            .unwrap();
    }
    assert_eq!(
        db.purge_throttle(t0 + 899, 900).await.unwrap(),
        0,
        "windows still open"
    );
    assert_eq!(
        db.purge_throttle(t0 + 900, 900).await.unwrap(),
        50,
        "the sprayed keys go"
    );
    let s = db
        .throttle("acct:backing-off@example.com", t0 + 901, rule)
        .await
        .unwrap();
    assert_eq!(
        s.attempts, 5,
        "a key whose window is still open is kept, its count goes on"
    );
}

#[rocket::async_test]
async fn a_hundred_parallel_wrong_passwords_count_exactly_a_hundred() {
    let app = app_with(|f| f.merge(("security.ip_limit_per_minute", 1000))).await;
    let target = app.user("target@example.com").await;
    let before = app.sec().hasher.hash_count();
    let attempts: Vec<_> = (0..100)
        .map(|_| app.post_json("/login", wrong("target@example.com")))
        .collect();
    let results = futures_join_all(attempts).await;
    let checked = results
        .iter()
        .filter(|r| r.status == Status::BadRequest)
        .count();
    let refused = results
        .iter()
        .filter(|r| r.status == Status::TooManyRequests)
        .count();
    assert_eq!((checked, refused), (10, 90), "exactly the limit is checked");
    assert_eq!(
        app.sec().hasher.hash_count() - before,
        10,
        "one hash per checked attempt, none for refused ones"
    );
    let state = app
        .dbh()
        .throttle(
            &gatehouse::core::email_key("acct", &target.email),
            0,
            ThrottleRule {
                limit: 1_000_000,
                window: i64::MAX / 4,
                base_delay: 1,
                max_delay: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(state.attempts, 101, "100 counted, none lost (+ this probe)");
}

#[rocket::async_test]
async fn a_client_address_is_limited_and_forwarded_for_is_not_believed() {
    let app = app_with(|f| f.merge(("security.ip_limit_per_minute", 5))).await;
    let from = |ip: &str, xff: Option<&str>| {
        let mut req = json_body(app.client.post("/login"), wrong("x@example.com"))
            .remote(format!("{ip}:1234").parse().unwrap());
        if let Some(x) = xff {
            req = req.header(Header::new("X-Forwarded-For", x.to_owned()));
        }
        send(req)
    };
    for i in 0..5 {
        assert_eq!(
            from("198.51.100.1", Some(&format!("10.0.0.{i}")))
                .await
                .status,
            Status::BadRequest
        );
    }
    let r = from("198.51.100.1", Some("10.9.9.9")).await;
    assert_eq!(
        r.status,
        Status::TooManyRequests,
        "a forged X-Forwarded-For does not reset the limit"
    );
    assert!(r.header("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        from("198.51.100.2", None).await.status,
        Status::BadRequest,
        "another address is not affected"
    );
}

#[rocket::async_test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let app = app_with(|f| {
        f.merge(("security.ip_limit_per_minute", 2))
            .merge(("security.trusted_proxies", vec!["127.0.0.1", "10.0.0.0/8"]))
    })
    .await;
    let via_proxy = |client: &'static str| {
        send(
            json_body(app.client.post("/login"), wrong("x@example.com"))
                .remote("127.0.0.1:5000".parse().unwrap())
                .header(Header::new(
                    "X-Forwarded-For",
                    format!("{client}, 10.1.2.3"),
                )),
        )
    };
    assert_eq!(via_proxy("203.0.113.7").await.status, Status::BadRequest);
    assert_eq!(via_proxy("203.0.113.7").await.status, Status::BadRequest);
    assert_eq!(
        via_proxy("203.0.113.7").await.status,
        Status::TooManyRequests
    );
    assert_eq!(
        via_proxy("203.0.113.8").await.status,
        Status::BadRequest,
        "each client has its own budget"
    );
    // And it is the forwarded address that is recorded at sign-in.
    let u = app.user("ip@example.com").await;
    let r = send(
        json_body(
            app.client.post("/login"),
            json!({"email": "ip@example.com", "password": PASSWORD}),
        )
        .remote("127.0.0.1:5000".parse().unwrap())
        .header(Header::new("X-Forwarded-For", "192.0.2.44")),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    let t = app.dbh().tracking(u.id).await.unwrap().unwrap();
    assert_eq!(t.current_login_ip.as_deref(), Some("192.0.2.44"));
}

#[rocket::async_test]
async fn basic_auth_is_throttled_like_sign_in() {
    use base64::Engine;
    let app = app().await;
    app.user("b@example.com").await;
    let basic = |pw: &str| {
        Header::new(
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("b@example.com:{pw}"))
            ),
        )
    };
    for _ in 0..10 {
        assert_eq!(
            send(app.client.get("/api/basic-test").header(basic("wrong-one")))
                .await
                .status,
            Status::Unauthorized
        );
    }
    let r = send(app.client.get("/api/basic-test").header(basic(PASSWORD))).await;
    assert_eq!(r.status, Status::TooManyRequests);
}

#[rocket::async_test]
async fn enumeration_unknown_and_wrong_are_indistinguishable() {
    let app = app().await;
    app.user("real@example.com").await;
    let u = app.user("inactive@example.com").await;
    app.dbh().set_active(u.id, false).await.unwrap();
    let norm = |r: &Resp| {
        let headers: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k != "Date" && k != "X-Request-Id")
            .cloned()
            .collect();
        (r.status, headers, r.body.clone())
    };
    let counts = app.sec().hasher.hash_count();
    let unknown = app.post_json("/login", wrong("ghost@example.com")).await;
    let c1 = app.sec().hasher.hash_count();
    let wrong_pw = app.post_json("/login", wrong("real@example.com")).await;
    let c2 = app.sec().hasher.hash_count();
    let inactive_wrong = app.post_json("/login", wrong("inactive@example.com")).await;
    let c3 = app.sec().hasher.hash_count();
    assert_eq!(
        (c1 - counts, c2 - c1, c3 - c2),
        (1, 1, 1),
        "exactly one hash each"
    );
    assert_eq!(norm(&unknown), norm(&wrong_pw));
    assert_eq!(
        norm(&unknown),
        norm(&inactive_wrong),
        "an inactive account shows only after the right password"
    );
}

#[rocket::async_test]
async fn fifty_parallel_registrations_of_one_email_make_one_account() {
    let app = app_with(|f| {
        f.merge(("security.ip_limit_per_minute", 1000))
            .merge(("security.account_limit", 1000))
    })
    .await;
    let regs: Vec<_> = (0..50)
        .map(|i| {
            let email = match i % 3 {
                0 => "Race@Example.com",
                1 => "race@example.com",
                _ => "RACE@EXAMPLE.COM",
            };
            app.post_json(
                "/register",
                json!({"email": email, "password": "password1", "password_confirm": "password1"}),
            )
        })
        .collect();
    let results = futures_join_all(regs).await;
    assert!(results.iter().all(|r| r.status.code < 500), "no 5xx");
    assert_eq!(results.iter().filter(|r| r.status == Status::Ok).count(), 1);
    for r in results.iter().filter(|r| r.status != Status::Ok) {
        assert_eq!(r.status, Status::BadRequest);
        assert!(
            r.errors()[0].ends_with("is already associated with an account."),
            "{}",
            r.body
        );
    }
    assert_eq!(app.dbh().list_users().await.unwrap().len(), 1);
}
