//! Issue 17, item 3: one binary. Templates and static files are embedded,
//! so the server works from any working directory; a configured directory
//! overrides them; `--version`; every start-up problem is one line with its
//! reason, never a panic or a backtrace.

use crate::process::{env, run, Server};

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("bin.db").display())
}

#[test]
fn the_binary_serves_its_pages_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let server = Server::start_in(&env(&sqlite(&dir), ""), elsewhere.path());
    for (path, kind) in [
        ("/", "text/html"),
        ("/login", "text/html"),
        ("/static/style.css", "text/css"),
        ("/static/demo.js", "text/javascript"),
        ("/demo", "text/html"),
    ] {
        let r = server.request("GET", path, &[], "").unwrap();
        assert_eq!(r.status, 200, "{path}: {}\n{}", r.body, server.logs());
        let ct = r.header("content-type").unwrap_or_default().to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
    }
    let r = server.request("GET", "/login", &[], "").unwrap();
    assert!(r.body.contains("name=\"password\""), "{}", r.body);
    assert_eq!(
        server
            .request("GET", "/static/../Cargo.toml", &[], "")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        server
            .request("GET", "/static/nope.css", &[], "")
            .unwrap()
            .status,
        404
    );
}

#[test]
fn a_configured_directory_overrides_the_built_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let mine = tempfile::tempdir().unwrap();
    std::fs::write(
        mine.path().join("style.css"),
        "body { color: rebeccapurple }",
    )
    .unwrap();
    let mut e = env(&sqlite(&dir), "");
    e.push((
        "ROCKET_STATIC_DIR".into(),
        mine.path().display().to_string(),
    ));
    let server = Server::start_in(&e, mine.path());
    let r = server.request("GET", "/static/style.css", &[], "").unwrap();
    assert_eq!(r.body, "body { color: rebeccapurple }");
    let r = server.request("GET", "/static/demo.js", &[], "").unwrap();
    assert_eq!(r.status, 200, "the rest stays built in");
}

#[test]
fn version() {
    let out = run(&[], &["--version"], "");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gatehouse {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn start_up_problems_are_one_line_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let taken_reason = format!("cannot listen for metrics on {taken_addr}");
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (
            {
                let mut e = env(&db, "");
                e.push(("ROCKET_TEMPLATE_DIR".into(), "/no/such/dir".into()));
                e
            },
            "template_dir \"/no/such/dir\" is not a directory",
        ),
        (
            env(&db, ",bcrypt_cost=3"),
            "security.bcrypt_cost: must be between 4 and 31, not 3",
        ),
        (env(&db, ",nonsense=1"), "invalid security configuration"),
        (
            env("postgres://nobody:secret@127.0.0.1:1/nothing", ""),
            "cannot open database postgres://nobody:***@127.0.0.1:1/nothing",
        ),
        (env("mysql://127.0.0.1/x", ""), "unsupported database URL"),
        (
            {
                let mut e = env(&db, "");
                e.push(("ROCKET_SECRET_KEY".into(), "CHANGE-ME".into()));
                e
            },
            "secret_key: is still the CHANGE-ME placeholder",
        ),
        (
            env(&db, ",metrics_token=\"short\""),
            "security.metrics_token: is shorter than 16 characters",
        ),
        (
            env(&db, &format!(",metrics_address=\"{taken_addr}\"")),
            &taken_reason,
        ),
    ];
    for (e, reason) in cases {
        let out = run(&e, &["serve"], "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{reason}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("gatehouse: ") && last.contains(reason),
            "{reason}: the last line is {last:?}\n{stderr}"
        );
        assert!(
            !stderr.contains("secret@"),
            "the password is redacted: {stderr}"
        );
        let lower = stderr.to_lowercase();
        assert!(
            !lower.contains("panick") && !lower.contains("backtrace"),
            "{stderr}"
        );
    }
}
