//! Issue 6, item 1 and 5: the admin CLI and check-config, run as a process
//! on the test database, checked through the app.

use rocket::http::Status;
use serde_json::json;

use crate::common::*;
use crate::process::{env, run};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let reason = err
        .lines()
        .filter(|l| l.starts_with("gatehouse: "))
        .collect::<Vec<_>>();
    assert_eq!(reason.len(), 1, "one-line reason: {err}");
    reason[0].to_owned()
}

#[rocket::async_test]
async fn users_and_roles_from_the_command_line() {
    let app = app().await;
    let e = env(&app.db.url, "");

    ok(&run(
        &e,
        &[
            "roles",
            "create",
            "admin",
            "--permissions",
            "read,write",
            "--description",
            "Admins",
        ],
        "",
    ));
    assert!(refused(&run(&e, &["roles", "create", "admin"], "")).contains("already exists"));
    let out = ok(&run(
        &e,
        &[
            "users",
            "create",
            "boss@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        "boss password\n",
    ));
    assert!(out.contains("created user boss@example.com"), "{out}");

    // The user signs in with that password and has the role.
    let token = app.login_token("boss@example.com", "boss password").await;
    let me = app.get_with_token("/api/me", &token).await;
    assert_eq!(me.json()["roles"], json!(["admin"]));

    // Duplicates, unknown users and roles, weak or missing passwords: exit 1, one line.
    assert!(refused(&run(
        &e,
        &["users", "create", "BOSS@example.com", "--password-stdin"],
        "another pw\n"
    ))
    .contains("already associated"));
    assert!(refused(&run(
        &e,
        &["users", "create", "x@example.com", "--password-stdin"],
        "short\n"
    ))
    .contains("at least 8"));
    assert!(
        refused(&run(&e, &["users", "create", "x@example.com"], "")).contains("--password-stdin")
    );
    assert!(refused(&run(
        &e,
        &["users", "create", "not-an-email", "--password-stdin"],
        "long enough\n"
    ))
    .contains("Invalid email"));
    assert!(refused(&run(
        &e,
        &[
            "users",
            "create",
            "x@example.com",
            "--password-stdin",
            "--role",
            "ghost"
        ],
        "long enough\n"
    ))
    .contains("ghost"));
    assert!(
        refused(&run(&e, &["users", "deactivate", "nobody@example.com"], ""))
            .contains("no user with email nobody@example.com")
    );
    assert!(
        refused(&run(&e, &["roles", "add", "boss@example.com", "ghost"], "")).contains("no role")
    );
    // Usage errors are clap's (exit 2), and a password is never an argument.
    assert_eq!(
        run(
            &e,
            &["users", "create", "y@example.com", "--password", "x"],
            ""
        )
        .status
        .code(),
        Some(2)
    );

    // Listing.
    ok(&run(
        &e,
        &["users", "create", "staff@example.com", "--password-stdin"],
        "staff password\n",
    ));
    ok(&run(
        &e,
        &["roles", "add", "staff@example.com", "admin"],
        "",
    ));
    let list = ok(&run(&e, &["users", "list"], ""));
    assert!(
        list.contains("boss@example.com") && list.contains("staff@example.com"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("staff@example.com") && l.contains("admin")),
        "{list}"
    );
    let roles = ok(&run(&e, &["roles", "list"], ""));
    assert!(
        roles.contains("admin") && roles.contains("read,write"),
        "{roles}"
    );
    ok(&run(
        &e,
        &["roles", "remove", "staff@example.com", "admin"],
        "",
    ));
    let staff = app.login_token("staff@example.com", "staff password").await;
    assert_eq!(
        app.get_with_token("/api/admin/users", &staff).await.status,
        Status::Forbidden
    );

    // Deactivate blocks the token at once; activate restores it.
    ok(&run(&e, &["users", "deactivate", "boss@example.com"], ""));
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized
    );
    ok(&run(&e, &["users", "activate", "boss@example.com"], ""));
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Ok
    );

    // reset-access kills every token; change-password too, and sets the password.
    ok(&run(&e, &["users", "reset-access", "boss@example.com"], ""));
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized
    );
    let token = app.login_token("boss@example.com", "boss password").await;
    ok(&run(
        &e,
        &[
            "users",
            "change-password",
            "boss@example.com",
            "--password-stdin",
        ],
        "a new password\n",
    ));
    assert_eq!(
        app.get_with_token("/api/test", &token).await.status,
        Status::Unauthorized
    );
    app.login_token("boss@example.com", "a new password").await;
}

/// Support from the command line: confirm an address, mail a reset link
/// (the running app's outbox sends it; the CLI only queues it).
#[rocket::async_test]
async fn support_confirms_and_sends_reset_links() {
    let app = app_with(|f| f.merge(("security.confirmable", true))).await;
    let e = env(&app.db.url, ",confirmable=true");
    // An account the CLI creates is confirmed: the administrator vouches.
    ok(&run(
        &e,
        &["users", "create", "made@example.com", "--password-stdin"],
        "password123\n",
    ));
    app.login_token("made@example.com", "password123").await;

    // One registered through the web is not, until support confirms it.
    let r = app
        .post_json(
            "/register",
            json!({"email": "stuck@example.com", "password": PASSWORD, "password_confirm": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    let r = app
        .post_json(
            "/login",
            json!({"email": "stuck@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    let out = ok(&run(&e, &["users", "confirm", "STUCK@example.com"], ""));
    assert!(out.contains("confirmed stuck@example.com"), "{out}");
    app.login_token("stuck@example.com", PASSWORD).await;
    let out = ok(&run(&e, &["users", "confirm", "stuck@example.com"], ""));
    assert!(out.contains("was confirmed already"), "{out}");
    let reason = refused(&run(&e, &["users", "confirm", "nobody@example.com"], ""));
    assert!(reason.contains("nobody@example.com"), "{reason}");

    let out = ok(&run(&e, &["users", "send-reset", "stuck@example.com"], ""));
    assert!(out.contains("queued a password reset link"), "{out}");
    // The app's worker finds it on its next look at the outbox.
    let mail = crate::mailbox::expect_mail(
        app.mail.path(),
        "stuck@example.com",
        "Password reset instructions",
    )
    .await;
    let r = app
        .post_json(
            &mail.link_path(),
            json!({"password": "support reset 1", "password_confirm": "support reset 1"}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

/// Personal access tokens from the command line: created (printed once),
/// listed, revoked.
#[rocket::async_test]
async fn tokens_are_made_listed_and_revoked_from_the_command_line() {
    let app = app().await;
    app.user_with("ci@example.com", PASSWORD, &["reader"]).await;
    let e = env(&app.db.url, "");
    let out = ok(&run(
        &e,
        &[
            "tokens",
            "create",
            "CI@example.com",
            "--name",
            "nightly",
            "--days",
            "7",
            "--role",
            "reader",
        ],
        "",
    ));
    let token = out.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("ghpat_"), "{out}");
    let r = app.get_with_token("/api/me", &token).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["roles"], json!(["reader"]));
    let list = ok(&run(&e, &["tokens", "list", "ci@example.com"], ""));
    assert!(
        list.contains("nightly") && list.contains("reader"),
        "{list}"
    );
    assert!(!list.contains(&token), "never the secret: {list}");
    let id = token
        .trim_start_matches("ghpat_")
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let out = ok(&run(&e, &["tokens", "revoke", &id], ""));
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Unauthorized
    );
    let reason = refused(&run(&e, &["tokens", "revoke", &id], ""));
    assert!(reason.contains("no live token"), "{reason}");
    let reason = refused(&run(
        &e,
        &[
            "tokens",
            "create",
            "ci@example.com",
            "--name",
            "x",
            "--role",
            "admin",
        ],
        "",
    ));
    assert!(reason.contains("admin"), "{reason}");
}

/// Support: a user lost their phone. `users reset-two-factor` takes the
/// second factor away and signs them out everywhere.
#[rocket::async_test]
async fn support_resets_a_lost_second_factor() {
    let app = crate::twofactor::enrolled(|f| f).await;
    let e = env(&app.db.url, "");
    let (mut b, _) = crate::twofactor::password_step(&app).await;
    let r = crate::twofactor::code_step(&app, &mut b, &crate::twofactor::code(&app)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = r.token();
    let out = ok(&run(
        &e,
        &["users", "reset-two-factor", "TF@example.com"],
        "",
    ));
    assert!(
        out.contains("turned two-factor sign-in off for tf@example.com"),
        "{out}"
    );
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Unauthorized,
        "signed out everywhere"
    );
    app.login_token("tf@example.com", PASSWORD).await;
    let out = ok(&run(
        &e,
        &["users", "reset-two-factor", "tf@example.com"],
        "",
    ));
    assert!(out.contains("had no two-factor sign-in"), "{out}");
    let reason = refused(&run(
        &e,
        &["users", "reset-two-factor", "nobody@example.com"],
        "",
    ));
    assert!(reason.contains("nobody@example.com"), "{reason}");
}

#[test]
fn help_reads_well() {
    let e: Vec<(String, String)> = Vec::new();
    let top = ok(&run(&e, &["--help"], ""));
    for cmd in ["serve", "users", "roles", "check-config"] {
        assert!(top.contains(cmd), "{top}");
    }
    let users = ok(&run(&e, &["users", "--help"], ""));
    for cmd in [
        "create",
        "activate",
        "deactivate",
        "reset-access",
        "change-password",
        "reset-two-factor",
        "list",
    ] {
        assert!(users.contains(cmd), "{users}");
    }
    let create = ok(&run(&e, &["users", "create", "--help"], ""));
    assert!(
        create.contains("--password-stdin") && create.contains("--role"),
        "{create}"
    );
}

#[test]
fn check_config_masks_secrets_and_fails_on_weak_settings() {
    let db = "sqlite::memory:";
    let two_factor = env(
        db,
        r#",totp_secrets={1="totp-secret-value-1"},recovery_codes_keys=["cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="]"#,
    );
    let out = run(&two_factor, &["check-config"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#"security.totp_secrets: {"1":"<set, 19 characters>"}"#),
        "{stdout}"
    );
    assert!(
        !stdout.contains("totp-secret-value-1") && !stdout.contains("cw_0x689R"),
        "two-factor secrets masked: {stdout}"
    );
    let mut e = env(db, "");
    // The test env has bcrypt_cost = 4: weak.
    let out = run(&e, &["check-config"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("security.secret_key: <set, 15 characters>"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SECRET_KEY) && !stdout.contains(PASSWORD_SALT),
        "secrets masked: {stdout}"
    );
    assert!(refused(&out).contains("bcrypt_cost = 4 is weak"));

    e.retain(|(k, _)| k != "ROCKET_SECURITY");
    e.push((
        "ROCKET_SECURITY".into(),
        format!("{{secret_key=\"{SECRET_KEY}\",password_salt=\"{PASSWORD_SALT}\",bcrypt_cost=12}}"),
    ));
    let out = ok(&run(&e, &["check-config"], ""));
    assert!(out.contains("configuration OK"), "{out}");

    // Release: cookie_secure off and development keys are refused.
    let mut rel = e.clone();
    rel.push(("ROCKET_PROFILE".into(), "release".into()));
    rel.retain(|(k, _)| k != "ROCKET_SECURITY");
    rel.push(("ROCKET_SECURITY".into(), format!("{{secret_key=\"{SECRET_KEY}-long-enough\",password_salt=\"{PASSWORD_SALT}\",cookie_secure=false}}")));
    let reason = refused(&run(&rel, &["check-config"], ""));
    assert!(
        reason.contains("cookie_secure is off in release"),
        "{reason}"
    );
    // Issue 12: mail needs a transport and the public URL in release.
    assert!(reason.contains("mail.transport is not set"), "{reason}");
    assert!(
        reason.contains("security.public_url is not set"),
        "{reason}"
    );
    rel.retain(|(k, _)| k != "ROCKET_SECURITY");
    rel.push((
        "ROCKET_SECURITY".into(),
        "{secret_key=\"gatehouse-DEVELOPMENT-ONLY-secret-key\",password_salt=\"x\"}".into(),
    ));
    let reason = refused(&run(&rel, &["check-config"], ""));
    assert!(reason.contains("development value"), "{reason}");

    // Issue 11, item 1: any profile but debug is production, and
    // development values fail check-config under every profile.
    let mut prod = rel.clone();
    prod.retain(|(k, _)| k != "ROCKET_PROFILE");
    prod.push(("ROCKET_PROFILE".into(), "production".into()));
    let reason = refused(&run(&prod, &["check-config"], ""));
    assert!(reason.contains("development value"), "{reason}");
    let mut debug_without_secrets = e.clone();
    debug_without_secrets.retain(|(k, _)| k != "ROCKET_SECURITY");
    debug_without_secrets.push(("ROCKET_SECURITY".into(), "{bcrypt_cost=12}".into()));
    let reason = refused(&run(&debug_without_secrets, &["check-config"], ""));
    assert!(
        reason.contains("security.secret_key is the public development value"),
        "{reason}"
    );
}
