//! Issue 11: the real Flask-Security-Too 5.9.2 as the test oracle. A small
//! FS app (tests/oracle/fs_app.py, from target/oracle-venv, which
//! scripts/venvs installs) runs on loopback against the same
//! database as a gatehouse instance, with the same secrets and salts, and
//! both directions are checked: tokens, accounts, revocation, roles, and
//! the JSON answers of the endpoints both serve.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rocket::http::{Header, Status};
use serde_json::{json, Value};

use crate::common::*;
use crate::process::{free_port, http, wait_until_listening, HttpResp, Process};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn venv_python() -> PathBuf {
    let python = PathBuf::from(ROOT).join("target/oracle-venv/bin/python");
    assert!(
        python.exists(),
        "the Flask-Security-Too oracle is not installed: run scripts/venvs \
         (scripts/test does)"
    );
    python
}

/// The test database as SQLAlchemy names it.
fn sqlalchemy_url(db: &TestDb) -> String {
    if db.is_postgres() {
        // postgres://…/db?options=-c%20search_path%3Dt_x: psycopg2 takes the
        // same `options`.
        db.url.replacen("postgres://", "postgresql+psycopg2://", 1)
    } else {
        let path = db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap();
        format!("sqlite:///{path}")
    }
}

/// A running Flask-Security-Too app; stopped on drop.
struct Fs {
    _child: Process,
    port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fs {
    fn start(db: &TestDb) -> Fs {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fs.log");
        let port = free_port();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let env = vec![
            ("ORACLE_DB".to_owned(), sqlalchemy_url(db)),
            ("ORACLE_SECRET_KEY".to_owned(), SECRET_KEY.to_owned()),
            ("ORACLE_PASSWORD_SALT".to_owned(), PASSWORD_SALT.to_owned()),
            ("ORACLE_MAIL_DIR".to_owned(), mail.display().to_string()),
            (
                "ORACLE_TOTP_SECRETS".to_owned(),
                r#"{"1": "oracle-totp-secret"}"#.to_owned(),
            ),
            ("ORACLE_RC_KEYS".to_owned(), format!(r#"["{RC_KEY}"]"#)),
        ];
        let child = Command::new(venv_python())
            .arg("fs_app.py")
            .arg(port.to_string())
            .current_dir(PathBuf::from(ROOT).join("tests/oracle"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the FS app starts");
        let fs = Fs {
            _child: Process(child),
            port,
            env,
            log,
            _dir: dir,
        };
        wait_until_listening(port, || format!("the FS app did not start: {}", fs.logs()));
        fs
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first step of a two-factor sign-in on FS (with "remember me"
    /// when asked; `cookies` sent along): FS's session cookie, which holds
    /// the pending state.
    fn password_step(&self, email: &str, remember: bool, cookies: &str) -> String {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        if !cookies.is_empty() {
            headers.push(("Cookie", cookies));
        }
        let body = json!({"email": email, "password": PASSWORD, "remember": remember});
        let login = self.send("POST", "/login", &headers, &body.to_string());
        assert!(
            login.body.contains(r#""tf_required":true"#),
            "{}",
            login.body
        );
        login.cookie_pair("session").expect("FS's session cookie")
    }

    /// A two-factor sign-in on FS: the password (FS answers tf_required and
    /// keeps the pending state in its session cookie), then `code`.
    fn sign_in_with_code(&self, email: &str, code: &str) -> HttpResp {
        let json = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        let login = self.send("POST", "/login", &json, &creds(email, PASSWORD).to_string());
        assert!(
            login.body.contains(r#""tf_required":true"#),
            "{}",
            login.body
        );
        let cookie = login.cookie_pair("session").expect("FS's session cookie");
        let mut headers = json.to_vec();
        headers.push(("Cookie", &cookie));
        self.send(
            "POST",
            "/tf-validate",
            &headers,
            &json!({ "code": code }).to_string(),
        )
    }

    /// The token of the newest mail FS wrote with this subject to `to`.
    fn mailed_token(&self, to: &str, subject: &str) -> String {
        let dir = self._dir.path().join("mail");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .rev()
            .map(|f| serde_json::from_str::<Value>(&std::fs::read_to_string(f).unwrap()).unwrap())
            .find(|m| m["recipient"] == to && m["subject"] == subject)
            .and_then(|m| m["token"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("FS mailed no {subject:?} to {to}\n{}", self.logs()))
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResp {
        http(self.port, method, path, headers, body)
            .unwrap_or_else(|e| panic!("FS {method} {path}: {e}\n{}", self.logs()))
    }

    /// A JSON request; `token` goes in Authentication-Token.
    fn json(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Reply {
        let mut headers = vec![("Accept", "application/json")];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        if let Some(t) = token {
            headers.push(("Authentication-Token", t));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = self.send(method, path, &headers, &body);
        Reply {
            status: r.status,
            body: serde_json::from_str(&r.body).unwrap_or(Value::String(r.body)),
        }
    }

    /// FS's own CLI (`flask users …`, `flask roles …`) on this app.
    fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(venv_python())
            .args(["-m", "flask", "--app", "fs_app"])
            .args(args)
            .current_dir(PathBuf::from(ROOT).join("tests/oracle"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "flask {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Status and JSON body of an answer, from either side.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    body: Value,
}

async fn gh(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Reply {
    let mut req = match method {
        "GET" => app.client.get(path.to_owned()),
        "POST" => app.client.post(path.to_owned()),
        other => panic!("{other}"),
    }
    .header(Header::new("Accept", "application/json"));
    if let Some(b) = body {
        req = json_body(req, b);
    }
    if let Some(t) = token {
        req = token_header(req, t);
    }
    let r = send(req).await;
    Reply {
        status: r.status.code,
        body: serde_json::from_str(&r.body).unwrap_or(Value::String(r.body)),
    }
}

fn token_of(r: &Reply) -> String {
    r.body["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {r:?}"))
        .to_owned()
}

fn creds(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

fn registration(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "password_confirm": PASSWORD})
}

#[rocket::async_test]
async fn tokens_and_accounts_cross_both_ways() {
    let app = app().await;
    let fs = Fs::start(&app.db);

    // Registered on gatehouse, signed in on FS; FS's token works here.
    let r = gh(
        &app,
        "POST",
        "/register",
        Some(registration("gh@example.com")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = fs.json(
        "POST",
        "/login?include_auth_token",
        Some(creds("gh@example.com", PASSWORD)),
        None,
    );
    assert_eq!(r.status, 200, "FS signs in a gatehouse account: {r:?}");
    let fs_token = token_of(&r);
    let r = gh(&app, "GET", "/api/test", None, Some(&fs_token)).await;
    assert_eq!(r.status, 200, "gatehouse takes FS's token: {r:?}");
    let r = gh(&app, "GET", "/api/me", None, Some(&fs_token)).await;
    assert_eq!(r.body["email"], "gh@example.com");

    // Registered on FS, signed in here; this token works on FS.
    let r = fs.json(
        "POST",
        "/register",
        Some(registration("fs@example.com")),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = gh(
        &app,
        "POST",
        "/login?include_auth_token",
        Some(creds("fs@example.com", PASSWORD)),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "gatehouse signs in an FS account: {r:?}");
    let gh_token = token_of(&r);
    let r = fs.json("GET", "/api/test", None, Some(&gh_token));
    assert_eq!(r.status, 200, "FS takes gatehouse's token: {r:?}");
    let r = fs.json("GET", "/api/me", None, Some(&gh_token));
    assert_eq!(r.body["email"], "fs@example.com");

    // Both sides fill fs_webauthn_user_handle alike: a UUID4 as 32 hex.
    for email in ["gh@example.com", "fs@example.com"] {
        const SQL: &str = r#"SELECT fs_webauthn_user_handle FROM "user" WHERE email = $1"#;
        let (handle,): (Option<String>,) =
            crate::on_pool!(app, p => sqlx::query_as(SQL).bind(email).fetch_one(p).await).unwrap();
        let handle = handle.unwrap_or_else(|| panic!("{email}: no fs_webauthn_user_handle"));
        assert_eq!(handle.len(), 32, "{email}: {handle}");
        assert!(handle
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(&handle[12..13], "4", "{email}: a version-4 UUID: {handle}");
    }

    // Sign-in tracking is one count, whichever side signs in.
    let before = app
        .dbh()
        .tracking(1)
        .await
        .unwrap()
        .unwrap()
        .login_count
        .unwrap();
    fs.json(
        "POST",
        "/login",
        Some(creds("gh@example.com", PASSWORD)),
        None,
    );
    gh(
        &app,
        "POST",
        "/login",
        Some(creds("gh@example.com", PASSWORD)),
        None,
    )
    .await;
    let after = app
        .dbh()
        .tracking(1)
        .await
        .unwrap()
        .unwrap()
        .login_count
        .unwrap();
    assert_eq!(after, before + 2);

    // A wrong password is refused on both, and nobody is let in by it.
    let r = fs.json(
        "POST",
        "/login?include_auth_token",
        Some(creds("fs@example.com", "wrong horse")),
        None,
    );
    assert_eq!(r.status, 400);
    let r = gh(
        &app,
        "POST",
        "/login?include_auth_token",
        Some(creds("gh@example.com", "wrong horse")),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[rocket::async_test]
async fn revocation_on_either_side_is_honoured_by_the_other() {
    let app = app().await;
    let fs = Fs::start(&app.db);
    app.user("rev@example.com").await;
    let gh_login = |password: &'static str| {
        gh(
            &app,
            "POST",
            "/login?include_auth_token",
            Some(creds("rev@example.com", password)),
            None,
        )
    };
    let fs_login = |password: &str| {
        fs.json(
            "POST",
            "/login?include_auth_token",
            Some(creds("rev@example.com", password)),
            None,
        )
    };

    // A password change on FS: gatehouse refuses the old token and password.
    let old_gh = token_of(&gh_login(PASSWORD).await);
    let fs_token = token_of(&fs_login(PASSWORD));
    let r = fs.json(
        "POST",
        "/change",
        Some(json!({"password": PASSWORD, "new_password": "second horse", "new_password_confirm": "second horse"})),
        Some(&fs_token),
    );
    assert_eq!(r.status, 200, "FS changes the password: {r:?}");
    assert_eq!(
        gh(&app, "GET", "/api/test", None, Some(&old_gh))
            .await
            .status,
        401
    );
    assert_eq!(gh_login(PASSWORD).await.status, 400);
    let new_gh = token_of(&gh_login("second horse").await);

    // A password change here: FS refuses the old token and password.
    let fs_token = token_of(&fs_login("second horse"));
    let r = gh(
        &app,
        "POST",
        "/change",
        Some(json!({"password": "second horse", "new_password": "third horse!", "new_password_confirm": "third horse!"})),
        Some(&new_gh),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        fs.json("GET", "/api/test", None, Some(&fs_token)).status,
        401
    );
    assert_eq!(fs_login("second horse").status, 400);
    let fs_token = token_of(&fs_login("third horse!"));

    // Sign out everywhere here: FS refuses its token at once.
    let gh_token = token_of(&gh_login("third horse!").await);
    assert_eq!(
        gh(&app, "POST", "/logout-everywhere", None, Some(&gh_token))
            .await
            .status,
        200
    );
    assert_eq!(
        fs.json("GET", "/api/test", None, Some(&fs_token)).status,
        401
    );

    // FS's reset_access: gatehouse refuses its token and its session.
    let gh_token = token_of(&gh_login("third horse!").await);
    let mut browser = app.browser_login("rev@example.com", "third horse!").await;
    fs.cli(&["users", "reset_access", "rev@example.com"]);
    assert_eq!(
        gh(&app, "GET", "/api/test", None, Some(&gh_token))
            .await
            .status,
        401
    );
    assert_eq!(
        browser
            .send(accept_json(app.client.get("/api/me")))
            .await
            .status,
        Status::Unauthorized
    );

    // Deactivation on FS: refused here; activation here: FS lets them in.
    let gh_token = token_of(&gh_login("third horse!").await);
    fs.cli(&["users", "deactivate", "rev@example.com"]);
    assert_eq!(
        gh(&app, "GET", "/api/test", None, Some(&gh_token))
            .await
            .status,
        401
    );
    assert_eq!(gh_login("third horse!").await.status, 400);
    gatehouse::core::admin::set_active(app.sec(), "rev@example.com", true)
        .await
        .unwrap();
    assert_eq!(fs_login("third horse!").status, 200);
    let gh_token = token_of(&gh_login("third horse!").await);

    // Roles: given on FS, honoured here; taken here, refused on FS.
    fs.cli(&["roles", "create", "admin"]);
    fs.cli(&["roles", "add", "rev@example.com", "admin"]);
    assert_eq!(
        gh(&app, "GET", "/api/admin/users", None, Some(&gh_token))
            .await
            .status,
        200
    );
    let fs_token = token_of(&fs_login("third horse!"));
    assert_eq!(
        fs.json("GET", "/api/admin/users", None, Some(&fs_token))
            .status,
        200
    );
    gatehouse::core::admin::remove_role(app.sec(), "rev@example.com", "admin")
        .await
        .unwrap();
    assert_eq!(
        fs.json("GET", "/api/admin/users", None, Some(&fs_token))
            .status,
        403
    );
    assert_eq!(
        gh(&app, "GET", "/api/admin/users", None, Some(&gh_token))
            .await
            .status,
        403
    );
}

/// Sends each case to FS and to gatehouse (with each side's own token,
/// when given) and lists where the masked answers differ.
async fn compare(
    fs: &Fs,
    app: &TestApp,
    cases: &[(&str, &str, Option<Value>)],
    tokens: Option<(&str, &str)>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for (method, path, body) in cases {
        let theirs = masked(fs.json(method, path, body.clone(), tokens.map(|t| t.0)));
        let ours = masked(gh(app, method, path, body.clone(), tokens.map(|t| t.1)).await);
        if theirs != ours {
            differences.push(format!(
                "{method} {path} {}\n  FS:        {} {}\n  gatehouse: {} {}",
                body.as_ref().map(|b| b.to_string()).unwrap_or_default(),
                theirs.status,
                theirs.body,
                ours.status,
                ours.body
            ));
        }
    }
    differences
}

/// Volatile values (tokens, CSRF tokens) are masked, and so is a user's id
/// (it differs only by which side made the row); everything else must be
/// equal.
fn masked(mut r: Reply) -> Reply {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if matches!(k.as_str(), "csrf_token" | "authentication_token") {
                        *v = Value::String("<masked>".into());
                    } else {
                        walk(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut r.body);
    if let Some(obj) = r.body.as_object_mut() {
        obj.remove("id");
    }
    r
}

#[rocket::async_test]
async fn json_answers_match_flask_security() {
    let app = app().await;
    let fs = Fs::start(&app.db);
    app.user("same@example.com").await;
    app.user_with("off@example.com", PASSWORD, &[]).await;
    gatehouse::core::admin::set_active(app.sec(), "off@example.com", false)
        .await
        .unwrap();
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/login", None),
        ("POST", "/login", Some(json!({}))),
        ("POST", "/login", Some(json!({"email": "", "password": ""}))),
        ("POST", "/login", Some(json!({"email": "same@example.com"}))),
        ("POST", "/login", Some(json!({"password": PASSWORD}))),
        ("POST", "/login", Some(creds("off@example.com", PASSWORD))),
        (
            "POST",
            "/login",
            Some(json!({"email": "same@example.com", "password": 5})),
        ),
        ("POST", "/register", Some(json!({}))),
        (
            "POST",
            "/register",
            Some(json!({"email": "", "password": ""})),
        ),
        (
            "POST",
            "/register",
            Some(json!({"email": "n1@example.com", "password": PASSWORD})),
        ),
        (
            "POST",
            "/register",
            Some(
                json!({"email": "n2@example.com", "password": "short", "password_confirm": "short"}),
            ),
        ),
        (
            "POST",
            "/register",
            Some(
                json!({"email": "n3@example.com", "password": PASSWORD, "password_confirm": "other horse"}),
            ),
        ),
        (
            "POST",
            "/register",
            Some(
                json!({"email": "not-an-email", "password": PASSWORD, "password_confirm": PASSWORD}),
            ),
        ),
        ("POST", "/register", Some(registration("same@example.com"))),
        (
            "POST",
            "/register",
            Some(json!({"email": "n4@example.com", "password": 5, "password_confirm": 5})),
        ),
        ("GET", "/api/test", None),
        ("GET", "/api/me", None),
    ];
    let differences = compare(&fs, &app, &cases, None).await;
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[rocket::async_test]
async fn signed_in_json_answers_match_flask_security() {
    let app = app().await;
    let fs = Fs::start(&app.db);
    app.user("in@example.com").await;
    let gh_token = token_of(
        &gh(
            &app,
            "POST",
            "/login?include_auth_token",
            Some(creds("in@example.com", PASSWORD)),
            None,
        )
        .await,
    );
    let fs_token = token_of(&fs.json(
        "POST",
        "/login?include_auth_token",
        Some(creds("in@example.com", PASSWORD)),
        None,
    ));
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/login", None),
        ("POST", "/login", Some(creds("in@example.com", PASSWORD))),
        ("GET", "/register", None),
        ("GET", "/change", None),
        ("POST", "/change", Some(json!({}))),
        (
            "POST",
            "/change",
            Some(
                json!({"password": PASSWORD, "new_password": PASSWORD, "new_password_confirm": PASSWORD}),
            ),
        ),
        (
            "POST",
            "/change",
            Some(
                json!({"password": "wrong horse", "new_password": "fresh horse", "new_password_confirm": "fresh horse"}),
            ),
        ),
        (
            "POST",
            "/change",
            Some(
                json!({"password": PASSWORD, "new_password": "fresh horse", "new_password_confirm": "other horse"}),
            ),
        ),
        (
            "POST",
            "/change",
            Some(
                json!({"password": PASSWORD, "new_password": "short", "new_password_confirm": "short"}),
            ),
        ),
        ("GET", "/verify", None),
        ("POST", "/verify", Some(json!({}))),
        ("POST", "/verify", Some(json!({"password": "wrong horse"}))),
        ("GET", "/api/me", None),
    ];
    let mut differences = compare(&fs, &app, &cases, Some((&fs_token, &gh_token))).await;
    // Registration answers, each side a new account.
    let theirs = masked(fs.json(
        "POST",
        "/register",
        Some(registration("r1@example.com")),
        None,
    ));
    let ours = masked(
        gh(
            &app,
            "POST",
            "/register",
            Some(registration("r2@example.com")),
            None,
        )
        .await,
    );
    if theirs != ours {
        differences.push(format!(
            "POST /register (success)\n  FS:        {} {}\n  gatehouse: {} {}",
            theirs.status, theirs.body, ours.status, ours.body
        ));
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// The links FS mails (reset, confirm, change of address) work here, and
/// gatehouse's work on FS, on one database.
#[rocket::async_test]
async fn recovery_links_cross_both_ways() {
    let app = app_with(|f| {
        f.merge(("security.confirmable", true))
            .merge(("security.login_without_confirmation", true))
    })
    .await;
    let fs = Fs::start(&app.db);
    let reset = json!({"password": "reset on the other side", "password_confirm": "reset on the other side"});

    // FS mails a reset link; gatehouse takes it, and FS then refuses it.
    app.user("a@example.com").await;
    let r = fs.json(
        "POST",
        "/reset",
        Some(json!({"email": "a@example.com"})),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = fs.mailed_token("a@example.com", "Password reset instructions");
    let r = gh(
        &app,
        "POST",
        &format!("/reset/{token}"),
        Some(reset.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "gatehouse takes FS's reset link: {r:?}");
    let r = fs.json(
        "POST",
        "/login",
        Some(creds("a@example.com", "reset on the other side")),
        None,
    );
    assert_eq!(r.status, 200, "FS signs in with the new password: {r:?}");
    let r = fs.json(
        "POST",
        &format!("/reset/{token}"),
        Some(reset.clone()),
        None,
    );
    assert_eq!(r.status, 400, "used up on both sides: {r:?}");

    // gatehouse mails one; FS takes it.
    app.user("b@example.com").await;
    let r = gh(
        &app,
        "POST",
        "/reset",
        Some(json!({"email": "b@example.com"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let mail = crate::mailbox::expect_mail(
        app.mail.path(),
        "b@example.com",
        "Password reset instructions",
    )
    .await;
    let r = fs.json(
        "POST",
        &format!("/reset/{}", mail.token()),
        Some(reset.clone()),
        None,
    );
    assert_eq!(r.status, 200, "FS takes gatehouse's reset link: {r:?}");
    app.login_token("b@example.com", "reset on the other side")
        .await;

    // Confirmation links, both ways (the accounts start unconfirmed).
    app.user("c@example.com").await;
    app.user("d@example.com").await;
    let r = fs.json(
        "POST",
        "/confirm",
        Some(json!({"email": "c@example.com"})),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = fs.mailed_token("c@example.com", "Please confirm your email");
    let r = gh(&app, "GET", &format!("/confirm/{token}"), None, None).await;
    assert_eq!(
        r.status, 200,
        "gatehouse takes FS's confirmation link: {r:?}"
    );
    let c = app.sec().find_user("c@example.com").await.unwrap().unwrap();
    assert!(app.dbh().is_confirmed(c.id).await.unwrap());

    let r = gh(
        &app,
        "POST",
        "/confirm",
        Some(json!({"email": "d@example.com"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let mail = crate::mailbox::expect_mail(
        app.mail.path(),
        "d@example.com",
        "Please confirm your email",
    )
    .await;
    let r = fs.send("GET", &format!("/confirm/{}", mail.token()), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/login"), "FS's success: {r:?}");
    let d = app.sec().find_user("d@example.com").await.unwrap().unwrap();
    assert!(
        app.dbh().is_confirmed(d.id).await.unwrap(),
        "FS confirmed it"
    );

    // Change-of-address links, both ways.
    let r = fs.json(
        "POST",
        "/login?include_auth_token",
        Some(creds("c@example.com", PASSWORD)),
        None,
    );
    let fs_token = token_of(&r);
    let r = fs.json(
        "POST",
        "/change-email",
        Some(json!({"email": "c.new@example.com"})),
        Some(&fs_token),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = fs.mailed_token("c.new@example.com", "Confirm your new email address");
    let r = gh(&app, "GET", &format!("/change-email/{token}"), None, None).await;
    assert_eq!(
        r.status, 200,
        "gatehouse takes FS's change-of-address link: {r:?}"
    );
    let r = fs.json(
        "POST",
        "/login",
        Some(creds("c.new@example.com", PASSWORD)),
        None,
    );
    assert_eq!(r.status, 200, "FS signs in with the new address: {r:?}");

    let gh_token = app.login_token("d@example.com", PASSWORD).await;
    let r = send(
        token_header(app.client.post("/change-email"), &gh_token)
            .header(rocket::http::ContentType::JSON)
            .body(json!({"email": "d.new@example.com"}).to_string()),
    )
    .await;
    assert_eq!(r.status, rocket::http::Status::Ok, "{}", r.body);
    let mail = crate::mailbox::expect_mail(
        app.mail.path(),
        "d.new@example.com",
        "Confirm your new email address",
    )
    .await;
    let r = fs.send("GET", &format!("/change-email/{}", mail.token()), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/"), "FS's success: {r:?}");
    // FS changed the email behind gatehouse's canonical key: the new
    // address signs in here, the old one names nobody, and it is free to
    // register again.
    app.login_token("d.new@example.com", PASSWORD).await;
    let r = gh(
        &app,
        "POST",
        "/login",
        Some(creds("d@example.com", PASSWORD)),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = gh(
        &app,
        "POST",
        "/register",
        Some(registration("d@example.com")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "the old address is free: {r:?}");
}

/// Issue 14: an account that enrolled in FS's authenticator two-factor
/// signs in here with codes from its existing authenticator entry, and a
/// secret stored gatehouse's way works on FS.
#[rocket::async_test]
async fn two_factor_enrolled_on_fs_signs_in_here_and_back() {
    use gatehouse::core::totp::{base32_decode, code_at};
    let mut secrets = std::collections::BTreeMap::new();
    secrets.insert("1".to_owned(), "oracle-totp-secret".to_owned());
    let app = app_with(move |f| f.merge(("security.totp_secrets", secrets.clone()))).await;
    let fs = Fs::start(&app.db);
    app.user("tf@example.com").await;

    // Enrol through FS's own API, as its users did.
    let r = fs.json(
        "POST",
        "/login?include_auth_token",
        Some(creds("tf@example.com", PASSWORD)),
        None,
    );
    let fs_token = token_of(&r);
    let r = fs.json(
        "POST",
        "/tf-setup",
        Some(json!({"setup": "authenticator"})),
        Some(&fs_token),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let key = base32_decode(r.body["response"]["tf_authr_b32key"].as_str().unwrap()).unwrap();
    let state = r.body["response"]["tf_state_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let r = fs.json(
        "POST",
        &format!("/tf-setup/{state}"),
        Some(json!({"code": code_at(&key, now())})),
        Some(&fs_token),
    );
    assert_eq!(r.status, 200, "FS enrolled the authenticator: {r:?}");

    // gatehouse: the password, then a code from that same key.
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "tf@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.json()["response"]["tf_required"], true, "{}", r.body);
    let r = b
        .send(json_body(
            app.client.post("/tf-validate?include_auth_token"),
            json!({"code": code_at(&key, app.sec().now() as u64)}),
        ))
        .await;
    assert_eq!(r.status, rocket::http::Status::Ok, "{}", r.body);
    let r = gh(&app, "GET", "/api/me", None, Some(&r.token())).await;
    assert_eq!(r.body["email"], "tf@example.com");

    // The other way: a secret written the way gatehouse writes it.
    app.user("tf2@example.com").await;
    let key2 = b"gatehouse side key 1".to_vec();
    let stored = gatehouse::core::twofactor::write_secret(
        &key2,
        &{
            let mut s = std::collections::BTreeMap::new();
            s.insert("1".to_owned(), "oracle-totp-secret".to_owned());
            s
        },
        "gatehouse-oracle",
    );
    crate::on_pool!(&app, p => sqlx::query(
        r#"UPDATE "user" SET tf_primary_method = 'authenticator', tf_totp_secret = $1 WHERE email = $2"#)
        .bind(&stored).bind("tf2@example.com").execute(p).await.map(|_| ()).unwrap());
    let r = fs.sign_in_with_code("tf2@example.com", &code_at(&key2, now()));
    assert_eq!(
        r.status, 200,
        "FS signs in with a secret gatehouse wrote: {}",
        r.body
    );

    // Enrolled through gatehouse's /tf-setup: FS takes its codes too.
    app.user("tf3@example.com").await;
    let token = app.login_token("tf3@example.com", PASSWORD).await;
    let (key3, state) = crate::twofactor::start_enrolment_here(&app, &token).await;
    let r = send(token_header(
        json_body(
            app.client.post(format!("/tf-setup/{state}")),
            json!({"code": code_at(&key3, app.sec().now() as u64)}),
        ),
        &token,
    ))
    .await;
    assert_eq!(r.status, rocket::http::Status::Ok, "{}", r.body);
    let r = fs.sign_in_with_code("tf3@example.com", &code_at(&key3, now()));
    assert_eq!(
        r.status, 200,
        "FS signs in a user enrolled here: {}",
        r.body
    );
}

/// The Fernet key of the oracle's recovery codes (both sides).
const RC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// Issue 14, items 4 and 5: recovery codes made by either side (stored
/// Fernet-encrypted under the same keys) sign in on the other, and FS's
/// tf_validity cookie ("remember this browser") is honoured here.
#[rocket::async_test]
async fn recovery_codes_and_remembered_browsers_cross_both_ways() {
    use gatehouse::core::totp::code_at;
    let app = app_with(|f| {
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert("1".to_owned(), "oracle-totp-secret".to_owned());
        f.merge(("security.totp_secrets", secrets))
            .merge(("security.recovery_codes_keys", vec![RC_KEY]))
            .merge(("security.two_factor_always_validate", false))
    })
    .await;
    let fs = Fs::start(&app.db);
    app.user("rc@example.com").await;
    let token = app.login_token("rc@example.com", PASSWORD).await;
    let (key, state) = crate::twofactor::start_enrolment_here(&app, &token).await;
    let r = send(token_header(
        json_body(
            app.client.post(format!("/tf-setup/{state}")),
            json!({"code": code_at(&key, app.sec().now() as u64)}),
        ),
        &token,
    ))
    .await;
    assert_eq!(r.status, rocket::http::Status::Ok, "{}", r.body);

    // Codes made here: FS takes one (and uses it up).
    let r = send(token_header(
        json_body(app.client.post("/mf-recovery-codes"), json!({})),
        &token,
    ))
    .await;
    let ours: Vec<String> =
        serde_json::from_value(r.json()["response"]["recovery_codes"].clone()).unwrap();
    let session = fs.password_step("rc@example.com", false, "");
    let json_headers = |cookie: &str| {
        vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("Cookie", cookie),
        ]
        .into_iter()
        .map(|(a, b)| (a, b.to_owned()))
        .collect::<Vec<_>>()
    };
    let send_fs = |path: &str, cookie: &str, body: Value| {
        let h = json_headers(cookie);
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
        fs.send("POST", path, &h, &body.to_string())
    };
    let r = send_fs("/mf-recovery", &session, json!({"code": ours[0]}));
    assert_eq!(r.status, 200, "FS takes a code made here: {}", r.body);
    let later = app.sec().now() as u64 + 30;
    let session = fs.password_step("rc@example.com", false, "");
    let r = send_fs(
        "/tf-validate?include_auth_token",
        &session,
        json!({"code": code_at(&key, later)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let fs_token = r.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = Browser::default();
    b.send(json_body(
        app.client.post("/login"),
        json!({"email": "rc@example.com", "password": PASSWORD}),
    ))
    .await;
    let r = b
        .send(json_body(
            app.client.post("/mf-recovery"),
            json!({"code": ours[0]}),
        ))
        .await;
    assert_eq!(r.errors(), ["Recovery code invalid"], "FS used it up");

    // Codes made by FS: one signs in here.
    let r = fs.json(
        "POST",
        "/mf-recovery-codes",
        Some(json!({})),
        Some(&fs_token),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let theirs: Vec<String> =
        serde_json::from_value(r.body["response"]["recovery_codes"].clone()).unwrap();
    assert_ne!(theirs, ours);
    let r = b
        .send(json_body(
            app.client.post("/mf-recovery?include_auth_token"),
            json!({"code": theirs[2]}),
        ))
        .await;
    assert_eq!(r.status, rocket::http::Status::Ok, "{}", r.body);

    // FS's tf_validity cookie: after a remembered FS sign-in, this
    // browser skips the code here.
    let session = fs.password_step("rc@example.com", true, "");
    let r = send_fs(
        "/tf-validate",
        &session,
        json!({"code": code_at(&key, later)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let validity = r
        .cookie_pair("tf_validity")
        .expect("FS remembers the browser");
    let value = validity.trim_start_matches("tf_validity=").to_owned();
    let mut remembered = Browser {
        jar: vec![rocket::http::Cookie::new("tf_validity", value.clone())],
    };
    let r = remembered
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "rc@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.json()["response"]["tf_required"], false, "{}", r.body);
    // And gatehouse's cookie lets FS skip the code.
    let uid = uniquifier_of(&app, "rc@example.com").await;
    let user = app.dbh().user_by_uniquifier(&uid).await.unwrap().unwrap();
    let ours = app.sec().remember_browser(&user, true).unwrap();
    let h = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let cookie = format!("tf_validity={ours}");
    let mut headers = h.to_vec();
    headers.push(("Cookie", &cookie));
    let body = json!({"email": "rc@example.com", "password": PASSWORD});
    let r = fs.send("POST", "/login", &headers, &body.to_string());
    assert!(!r.body.contains(r#""tf_required":true"#), "{}", r.body);
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn uniquifier_of(app: &TestApp, email: &str) -> String {
    crate::on_pool!(app, p => sqlx::query_scalar::<_, String>(
        r#"SELECT fs_uniquifier FROM "user" WHERE email = $1"#)
        .bind(email).fetch_one(p).await.unwrap())
}

/// Issue 13, item 1: FS 5.9's refresh tokens cross both ways: one minted
/// here refreshes on FS, and FS's next one refreshes here; one minted by FS
/// refreshes here (its family gets a device), and FS honours ours after.
#[rocket::async_test]
async fn refresh_tokens_cross_both_ways() {
    let app = app().await;
    let fs = Fs::start(&app.db);
    app.user("refresh@example.com").await;
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let fs_refresh = |cookie: &str| {
        let c = format!("fs_refresh={cookie}");
        let mut h = json.to_vec();
        h.push(("Cookie", &c));
        fs.send("POST", "/refresh-token", &h, "{}")
    };

    // Minted here, used on FS.
    let r = app
        .post_json(
            "/login?include_auth_token",
            json!({"email": "refresh@example.com", "password": PASSWORD}),
        )
        .await;
    let ours = r
        .cookie("fs_refresh")
        .expect("our refresh cookie")
        .value()
        .to_owned();
    let r = fs_refresh(&ours);
    assert_eq!(
        r.status, 200,
        "FS takes a refresh token made here: {}",
        r.body
    );
    let fs_token = r.json()["response"]["user"]["authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        gh(&app, "GET", "/api/me", None, Some(&fs_token))
            .await
            .status,
        200
    );
    let next = r
        .cookie_pair("fs_refresh")
        .expect("FS's next refresh token");
    let next = next.trim_start_matches("fs_refresh=").to_owned();
    // FS moved the generation: our old one is reuse now (past the grace,
    // which FS does not keep: it is FS's exchange, at FS's time).
    let r = refresh_here(&app, next.clone()).await;
    assert_eq!(
        r.status,
        Status::Ok,
        "FS's next token refreshes here: {}",
        r.body
    );

    // Minted by FS, used here.
    let login = fs.send(
        "POST",
        "/login?include_auth_token",
        &json,
        &creds("refresh@example.com", PASSWORD).to_string(),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let theirs = login
        .cookie_pair("fs_refresh")
        .expect("FS's refresh cookie");
    let theirs = theirs.trim_start_matches("fs_refresh=").to_owned();
    let r = refresh_here(&app, theirs).await;
    assert_eq!(r.status, Status::Ok, "a refresh token FS made: {}", r.body);
    let token = r.token();
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Ok
    );
    let ours = r.cookie("fs_refresh").unwrap().value().to_owned();
    let r = fs_refresh(&ours);
    assert_eq!(
        r.status, 200,
        "and FS takes the one we made next: {}",
        r.body
    );
}

/// POST /refresh-token here with `cookie` as FS's refresh cookie.
async fn refresh_here(app: &TestApp, cookie: String) -> crate::common::Resp {
    let mut b = Browser {
        jar: vec![rocket::http::Cookie::new("fs_refresh", cookie)],
    };
    b.send(json_body(app.client.post("/refresh-token"), json!({})))
        .await
}
