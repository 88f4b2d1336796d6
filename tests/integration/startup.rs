//! Item 1: start-up rules.

use rocket::figment::{Figment, Profile};
use rocket::http::Status;

use crate::common::*;

fn release(db_url: &str) -> Figment {
    Figment::from(rocket::Config::release_default())
        .merge(("secret_key", ROCKET_KEY))
        .merge(("log_level", "off"))
        .merge(("databases.gatehouse.url", db_url))
        .select(Profile::const_new("release"))
}

async fn ignite_error(f: Figment) -> String {
    match gatehouse::rocket(f).ignite().await {
        Ok(_) => panic!("ignite should fail"),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn release_refuses_missing_or_development_secrets() {
    use gatehouse::config::{SecurityConfig, DEV_PASSWORD_SALT, DEV_SECRET_KEY};
    let db = "sqlite::memory:";
    let err = SecurityConfig::from_figment(&release(db))
        .unwrap_err()
        .to_string();
    assert!(err.contains("security.secret_key is not set"), "{err}");
    assert!(err.contains("ROCKET_SECURITY"), "says how: {err}");

    let f = release(db).merge(("security.secret_key", DEV_SECRET_KEY));
    let err = SecurityConfig::from_figment(&f).unwrap_err().to_string();
    assert!(err.contains("development value"), "{err}");

    let f = release(db).merge(("security.secret_key", "a-real-and-long-secret-key"));
    let err = SecurityConfig::from_figment(&f).unwrap_err().to_string();
    assert!(err.contains("security.password_salt is not set"), "{err}");

    let f = f.merge(("security.password_salt", DEV_PASSWORD_SALT));
    assert!(SecurityConfig::from_figment(&f).is_err());

    let f = f.merge(("security.password_salt", "a-real-salt"));
    let cfg = SecurityConfig::from_figment(&f).unwrap();
    assert!(cfg.cookie_secure, "Secure cookies by default in release");
    assert_eq!(cfg.bcrypt_cost, 12);
    assert!(cfg.totp_secrets.is_empty(), "no development TOTP secret");
    let mut dev = std::collections::BTreeMap::new();
    dev.insert("1", gatehouse::config::DEV_TOTP_SECRET);
    let err = SecurityConfig::from_figment(&f.clone().merge(("security.totp_secrets", dev)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("security.totp_secrets"), "{err}");
    let err = SecurityConfig::from_figment(
        &f.clone()
            .merge(("security.recovery_codes_keys", ["not a key"])),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a Fernet key"), "{err}");

    // Debug: marked development values, with no setup at all.
    let debug = Figment::from(rocket::Config::debug_default());
    let cfg = SecurityConfig::from_figment(&debug).unwrap();
    assert!(!cfg.cookie_secure);
    // Two-factor sign-in works under `cargo run`.
    assert_eq!(
        cfg.totp_secrets.get("1").map(String::as_str),
        Some(gatehouse::config::DEV_TOTP_SECRET)
    );
}

#[rocket::async_test]
async fn release_ignite_fails_without_secrets() {
    let err = ignite_error(release("sqlite::memory:")).await;
    assert!(err.contains("Fairing") || err.contains("fairing"), "{err}");
}

#[rocket::async_test]
async fn bad_settings_are_refused_with_a_reason() {
    use gatehouse::config::SecurityConfig;
    let f = figment("sqlite::memory:").merge(("security.bcrypt_cost", 3));
    assert!(SecurityConfig::from_figment(&f)
        .unwrap_err()
        .to_string()
        .contains("bcrypt_cost"));
    let f = figment("sqlite::memory:").merge(("security.no_such_key", 1));
    assert!(SecurityConfig::from_figment(&f)
        .unwrap_err()
        .to_string()
        .contains("no_such_key"));
    let err = ignite_error(figment("mysql://localhost/x")).await;
    assert!(!err.is_empty());
}

#[rocket::async_test]
async fn a_fresh_sqlite_file_is_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let client = client_on(&format!("sqlite://{}?mode=rwc", path.display()), |f| f).await;
    assert!(path.exists());
    let r = send(client.get("/api/articles/1/likes")).await;
    assert_eq!(r.status, Status::Ok);
    // Restarting on the same file keeps the data and re-runs nothing.
    drop(client);
    let client = client_on(&format!("sqlite://{}?mode=rwc", path.display()), |f| f).await;
    assert_eq!(
        send(client.get("/api/articles/1/likes")).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn secure_cookies_use_the_host_prefix() {
    let app = app_with(|f| f.merge(("security.cookie_secure", true))).await;
    app.user("sec@example.com").await;
    let r = app
        .post_json(
            "/login",
            serde_json::json!({"email": "sec@example.com", "password": PASSWORD}),
        )
        .await;
    let raw = r.raw_cookie("__Host-session");
    assert!(
        raw.contains("Secure") && raw.contains("HttpOnly") && raw.contains("Path=/"),
        "{raw}"
    );
    assert!(!raw.contains("Domain"), "{raw}");
    let xsrf = r.raw_cookie("XSRF-TOKEN");
    assert!(xsrf.contains("Secure"), "{xsrf}");
}

/// Issue 11, item 1: a release binary started with ROCKET_PROFILE=production
/// (or any profile but `debug`) used to serve with the public development
/// key and salt and cookie_secure off. Every profile but debug is
/// production now.
#[rocket::async_test]
async fn every_profile_but_debug_is_production() {
    use gatehouse::config::{ConfigError, SecurityConfig, DEV_SECRET_KEY};
    for profile in ["production", "prod", "default", "staging", "release"] {
        let f = release("sqlite::memory:").select(Profile::new(profile));
        assert!(
            matches!(
                SecurityConfig::from_figment(&f),
                Err(ConfigError::Missing {
                    key: "security.secret_key",
                    ..
                })
            ),
            "{profile}: secrets are required"
        );
        let dev = f.clone().merge(("security.secret_key", DEV_SECRET_KEY));
        assert!(
            matches!(
                SecurityConfig::from_figment(&dev),
                Err(ConfigError::DevelopmentValue { .. })
            ),
            "{profile}: the development key is refused"
        );
        let real = f
            .clone()
            .merge(("security.secret_key", "a-real-and-long-secret-key"))
            .merge(("security.password_salt", "a-real-salt"));
        let cfg = SecurityConfig::from_figment(&real).unwrap();
        assert!(cfg.cookie_secure, "{profile}: Secure cookies by default");
        let err = ignite_error(f).await;
        assert!(err.to_lowercase().contains("fairing"), "{profile}: {err}");
    }
}
