//! Issue 17, item 5: docs/openapi.yaml describes the JSON API, and
//! schemathesis (from target/openapi-venv, which scripts/venvs installs)
//! checks the running binary against it: no 500, no status, content type,
//! header or body outside the description, invalid input refused, and
//! operations that need authentication refuse requests without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fresh_db;
use crate::process::{env, Server};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const METRICS_TOKEN: &str = "openapi-metrics-token-0123";
const CLIENT: (&str, &str) = ("svc", "openapi-client-secret-0123");

fn schemathesis() -> PathBuf {
    let bin = PathBuf::from(ROOT).join("target/openapi-venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "schemathesis is not installed: run scripts/venvs (scripts/test does)"
    );
    bin
}

/// Every check but two: `positive_data_acceptance` wants a 2xx for any
/// well-formed body, but wrong credentials are Flask-Security's 400;
/// `unsupported_method` also sends methods Rocket cannot parse (QUERY),
/// which Rocket answers 400 before any gatehouse code runs. A known method
/// the path does not take is 405 with `Allow` (tested in audit.rs).
const CHECKS: &[&str] = &[
    "--checks",
    "all",
    "--exclude-checks",
    "positive_data_acceptance,unsupported_method",
];

/// Runs schemathesis against `server` with `args`; panics with its report
/// unless every check passed.
fn run(server: &Server, what: &str, args: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/openapi.yaml", server.port);
    let seed = std::env::var("GATEHOUSE_OPENAPI_SEED").unwrap_or_else(|_| "1".into());
    let mut child = Command::new(schemathesis())
        .current_dir(work.path())
        .args(["run", &url, "--no-color", "--workers", "1", "--seed", &seed])
        .args(["--max-examples", "40", "--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["-H", "Accept: application/json"])
        .args(CHECKS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("schemathesis runs");
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: schemathesis ran for more than 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what}: schemathesis found answers outside docs/openapi.yaml\n{report}\n\
         server log:\n{}",
        server.logs()
    );
    // It really tested something.
    assert!(report.contains("Test cases:"), "{what}: {report}");
    assert!(!report.contains("Tested: 0"), "{what}: {report}");
}

#[test]
fn the_server_answers_as_its_openapi_description_says() {
    let db = rocket::tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fresh_db());
    let extra = format!(
        ",ip_limit_per_minute=1000000,account_limit=1000000,\
         confirmable=true,login_without_confirmation=true,\
         metrics_token=\"{METRICS_TOKEN}\",\
         introspection_clients=[{{id=\"{}\",secret=\"{}\"}}]",
        CLIENT.0, CLIENT.1
    );
    let server = Server::start(&env(&db.url, &extra));

    // The document is served as committed.
    let r = server.request("GET", "/openapi.yaml", &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, include_str!("../../docs/openapi.yaml"));

    // Anonymous (and random, bad credentials).
    run(&server, "anonymous", &[]);

    // Signed in with a token. Signing out everywhere would revoke it for
    // the rest of the run, so that one is left to the anonymous pass; so is
    // signing a device out (the stateful phase follows GET /sessions to
    // this very device).
    let body = r#"{"email":"openapi@example.com","password":"openapi-password","password_confirm":"openapi-password"}"#;
    let r = server
        .request(
            "POST",
            "/register?include_auth_token",
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = format!("Authentication-Token: {token}");
    run(
        &server,
        "with a token",
        &[
            "-H",
            &header,
            "--generation-with-security-parameters",
            "false",
            "--exclude-path",
            "/logout-everywhere",
            "--exclude-path",
            "/sessions/{id}",
            "--exclude-path",
            "/introspect",
            "--exclude-path",
            "/metrics",
        ],
    );
    // The token survived: nothing in that pass revoked it.
    let auth = [("Authentication-Token", token.as_str())];
    let r = server.request("GET", "/change", &auth, "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // The services: introspection as a configured client, metrics with
    // the metrics token.
    let basic = format!("{}:{}", CLIENT.0, CLIENT.1);
    run(
        &server,
        "introspection client",
        &[
            "--auth",
            &basic,
            "--generation-with-security-parameters",
            "false",
            "--include-path",
            "/introspect",
        ],
    );
    let bearer = format!("Authorization: Bearer {METRICS_TOKEN}");
    run(
        &server,
        "metrics scraper",
        &[
            "-H",
            &bearer,
            "--generation-with-security-parameters",
            "false",
            "--include-path",
            "/metrics",
        ],
    );
}
