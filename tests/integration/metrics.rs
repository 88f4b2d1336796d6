//! Issue 17, item 4: /metrics in Prometheus format, on the main port behind
//! a token or on its own address; what it counts is what happened.

use rocket::http::{Header, Status};

use crate::common::*;
use crate::process::{env, free_port, http, wait_until_listening, Server};

const TOKEN: &str = "scrape-token-0123456789";

async fn metrics_app() -> TestApp {
    app_with(|f| f.merge(("security.metrics_token", TOKEN))).await
}

async fn scrape(app: &TestApp) -> String {
    let r = send(
        app.client
            .get("/metrics")
            .header(Header::new("Authorization", format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    r.body
}

/// The value of one series (`name{labels}`), 0 when it is absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "gatehouse_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
    )
}

#[rocket::async_test]
async fn metrics_are_not_served_unless_configured() {
    let app = app().await;
    let r = send(accept_json(app.client.get("/metrics"))).await;
    assert_eq!(r.status, Status::NotFound, "{}", r.body);
    assert_eq!(r.json()["meta"]["code"], 404);
}

#[rocket::async_test]
async fn a_scrape_needs_the_token() {
    let app = metrics_app().await;
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some("Basic abc"),
    ] {
        let mut req = app.client.get("/metrics");
        if let Some(a) = auth {
            req = req.header(Header::new("Authorization", a));
        }
        let r = send(req).await;
        assert_eq!(r.status, Status::Unauthorized, "{auth:?}: {}", r.body);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(r#"Bearer realm="metrics""#)
        );
        assert_eq!(
            r.json()["meta"]["code"],
            401,
            "an envelope, not a login redirect"
        );
        assert!(!r.body.contains("gatehouse_"), "{}", r.body);
    }
    let r = send(
        app.client
            .get("/metrics")
            .header(Header::new("Authorization", format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    assert!(
        r.header("Content-Type")
            .unwrap_or_default()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.header("Content-Type")
    );
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
}

/// Requests by route template and status, sign-ins by outcome, hashing and
/// database calls: each moves by exactly what was done.
#[rocket::async_test]
async fn it_counts_what_happened() {
    let app = metrics_app().await;
    app.user("m@example.com").await;
    let before = scrape(&app).await;

    let r = app.post_json("/login", wrong("m@example.com")).await;
    assert_eq!(r.status, Status::BadRequest);
    let token = app.login_token("m@example.com", PASSWORD).await;
    for article in [7, 8] {
        let r = app
            .get_with_token(&format!("/api/articles/{article}/likes"), &token)
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.body);
    }
    for path in ["/nope-1234", "/nope-5678"] {
        assert_eq!(send(app.client.get(path)).await.status, Status::NotFound);
    }
    assert_eq!(
        send(app.client.get("/static/style.css")).await.status,
        Status::Ok
    );

    let after = scrape(&app).await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(delta(&requests("/login", "POST", 400)), 1.0, "{after}");
    assert_eq!(delta(&requests("/login", "POST", 200)), 1.0);
    // A path with a parameter is counted under its template.
    assert_eq!(
        delta(&requests("/api/articles/<article_id>/likes", "GET", 200)),
        2.0
    );
    // Unknown paths share one label; the raw path never becomes one.
    assert_eq!(delta(&requests("unmatched", "GET", 404)), 2.0);
    assert!(!after.contains("nope-1234"), "{after}");
    assert_eq!(delta(&requests("/static/<path..>", "GET", 200)), 1.0);
    // The previous scrape is counted too, under its route.
    assert!(value(&after, &requests("/metrics", "GET", 200)) >= 1.0);

    assert_eq!(delta("gatehouse_signins_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(
        delta("gatehouse_signins_total{outcome=\"invalid_credentials\"}"),
        1.0
    );
    assert_eq!(delta("gatehouse_hash_duration_seconds_count"), 2.0);
    assert_eq!(value(&after, "gatehouse_hash_slots_busy"), 0.0);
    assert_eq!(value(&after, "gatehouse_hash_waiting"), 0.0);
    assert!(value(&after, "gatehouse_hash_slots") >= 1.0);
    // Each request above read the database at least once.
    assert!(delta("gatehouse_db_call_duration_seconds_count{outcome=\"ok\"}") >= 3.0);
    assert_eq!(value(&after, "gatehouse_db_pool_max_connections"), 4.0);
    assert!(after.contains("gatehouse_build_info{version=\""), "{after}");
}

#[rocket::async_test]
async fn limit_hits_are_counted_by_scope() {
    let app = app_with(|f| {
        f.merge(("security.metrics_token", TOKEN))
            .merge(("security.account_limit", 2))
            .merge(("security.ip_limit_per_minute", 4))
    })
    .await;
    app.user("t@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.post_json("/login", wrong("t@example.com"))
                .await
                .status
                .code,
        );
    }
    // Two attempts pass, the third is throttled on the account, the fifth
    // is over the address's limit of four.
    assert_eq!(statuses, [400, 400, 429, 429, 429]);
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "gatehouse_limit_hits_total{scope=\"account\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "gatehouse_limit_hits_total{scope=\"ip\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "gatehouse_signins_total{outcome=\"throttled\"}"),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "gatehouse_signins_total{outcome=\"invalid_credentials\"}"
        ),
        2.0
    );
}

/// Refusals for want of a hashing slot, and database calls that fail, are
/// counted as such.
#[rocket::async_test]
async fn busy_hashing_and_failed_database_calls_are_counted() {
    let app =
        app_with(|f| crate::outage::one_hashing_slot(f.merge(("security.metrics_token", TOKEN))))
            .await;
    let results = crate::outage::sign_in_burst(&app).await;
    let busy = results
        .iter()
        .filter(|r| r.status == Status::ServiceUnavailable)
        .count();
    assert!(busy >= 1, "a burst over one slot is refused");
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "gatehouse_hash_busy_refusals_total"),
        busy as f64,
        "{text}"
    );
    assert_eq!(
        value(&text, "gatehouse_signins_total{outcome=\"busy\"}"),
        busy as f64
    );
    assert_eq!(value(&text, "gatehouse_hash_slots"), 1.0);

    let token = app.login_token("busy@example.com", PASSWORD).await;
    let failed = "gatehouse_db_call_duration_seconds_count{outcome=\"error\"}";
    let before = value(&text, failed);
    app.dbh().close().await;
    let r = app.get_with_token("/api/me", &token).await;
    assert_eq!(r.status, Status::ServiceUnavailable);
    // The scrape itself needs no database.
    let text = scrape(&app).await;
    assert!(value(&text, failed) > before, "{text}");
}

/// On its own address: served there without the main port's token rule,
/// and not on the main port at all.
#[test]
fn a_separate_metrics_address_serves_only_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let port = free_port();
    let server = Server::start(&env(&db, &format!(",metrics_address=\"127.0.0.1:{port}\"")));
    wait_until_listening(port, || server.logs());
    assert_eq!(
        server.request("GET", "/livez", &[], "").unwrap().status,
        200
    );
    assert_eq!(
        server.request("GET", "/metrics", &[], "").unwrap().status,
        404
    );
    let r = http(port, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(r#"route="/livez",status="200""#),
        "{}",
        r.body
    );
    assert!(r.body.ends_with("# EOF\n"));
    let r = http(port, "GET", "/livez", &[], "").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["meta"]["code"], 404);
    let r = http(port, "POST", "/metrics", &[], "").unwrap();
    assert_eq!(r.status, 405);
    drop(server);

    // With a token too, the separate address asks for it.
    let port = free_port();
    let extra = format!(",metrics_address=\"127.0.0.1:{port}\",metrics_token=\"{TOKEN}\"");
    let server = Server::start(&env(&db, &extra));
    wait_until_listening(port, || server.logs());
    let r = http(port, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(r#"Bearer realm="metrics""#)
    );
    let auth = format!("Bearer {TOKEN}");
    let r = http(port, "GET", "/metrics", &[("Authorization", &auth)], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        server
            .request("GET", "/metrics", &[("Authorization", &auth)], "")
            .unwrap()
            .status,
        404,
        "not on the main port"
    );
}
