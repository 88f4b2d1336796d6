//! The `security` table of the Rocket configuration, and the database settings.
//!
//! Extracted once from Rocket's Figment at ignite, validated, then managed as
//! state. See WIRE.md §10 for every key.

use std::time::Duration;

use rocket::figment::{Figment, Profile};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Marker that every development secret carries. A release build refuses to
/// start while any secret still contains it.
pub const DEV_MARKER: &str = "DEVELOPMENT-ONLY";
/// Used in debug builds when `security.secret_key` is not set. NEVER in release.
pub const DEV_SECRET_KEY: &str = "gatehouse-DEVELOPMENT-ONLY-secret-key";
/// Used in debug builds when `security.password_salt` is not set. NEVER in release.
pub const DEV_PASSWORD_SALT: &str = "gatehouse-DEVELOPMENT-ONLY-password-salt";

/// The `security` table as written by the operator; optional values get
/// their defaults in [`SecurityConfig::from_figment`].
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    secret_key: Option<String>,
    password_salt: Option<String>,
    token_salt: Option<String>,
    token_max_age: Option<u64>,
    token_header: Option<String>,
    accept_bearer: Option<bool>,
    token_query_param: Option<String>,
    bcrypt_cost: Option<u32>,
    registerable: Option<bool>,
    cookie_secure: Option<bool>,
    session_max_age: Option<u64>,
    remember_max_age: Option<u64>,
    hash_slots: Option<usize>,
    hash_admission_ms: Option<u64>,
    account_limit: Option<i32>,
    account_window: Option<i64>,
    account_base_delay: Option<i32>,
    account_max_delay: Option<i32>,
    ip_limit_per_minute: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
}

/// Validated security settings.
pub struct SecurityConfig {
    /// Signs auth tokens (the Flask `SECRET_KEY` when migrating).
    pub secret_key: SecretString,
    /// Key of the password pre-hash (Flask `SECURITY_PASSWORD_SALT`).
    pub password_salt: SecretString,
    /// itsdangerous salt of auth tokens.
    pub token_salt: String,
    /// Tokens older than this many seconds are refused.
    pub token_max_age: u64,
    /// Header carrying the token.
    pub token_header: String,
    /// Also read `Authorization: Bearer <token>`.
    pub accept_bearer: bool,
    /// Query parameter carrying a token, when enabled (off by default: URLs get logged).
    pub token_query_param: Option<String>,
    /// bcrypt work factor of new hashes.
    pub bcrypt_cost: u32,
    /// Serve `/register`.
    pub registerable: bool,
    /// Secure + `__Host-` session cookie.
    pub cookie_secure: bool,
    /// Server-enforced lifetime of a plain session, seconds.
    pub session_max_age: u64,
    /// Lifetime of a "remember me" session, seconds.
    pub remember_max_age: u64,
    /// Concurrent bcrypt computations.
    pub hash_slots: usize,
    /// How long a request waits for a hashing slot before a 503.
    pub hash_admission: Duration,
    /// Per-account throttle of password attempts (shared through the database).
    pub account_throttle: crate::db::ThrottleRule,
    /// Auth requests per minute from one client address (per instance).
    pub ip_limit_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks).
    pub trusted_proxies: Vec<crate::auth::client_ip::IpNet>,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("secret_key", &"***")
            .field("password_salt", &"***")
            .field("token_salt", &self.token_salt)
            .field("token_max_age", &self.token_max_age)
            .field("token_header", &self.token_header)
            .field("accept_bearer", &self.accept_bearer)
            .field("token_query_param", &self.token_query_param)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("registerable", &self.registerable)
            .field("cookie_secure", &self.cookie_secure)
            .field("session_max_age", &self.session_max_age)
            .field("remember_max_age", &self.remember_max_age)
            .field("hash_slots", &self.hash_slots)
            .field("hash_admission", &self.hash_admission)
            .field("account_throttle", &self.account_throttle)
            .field("ip_limit_per_minute", &self.ip_limit_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// A configuration that must not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn is_release(figment: &Figment) -> bool {
    figment.profile() == Profile::const_new("release")
}

/// A secret must be present and, in release, must not be a development value.
fn secret(
    value: Option<String>,
    key: &str,
    dev_value: &str,
    release: bool,
) -> Result<SecretString, ConfigError> {
    let how = format!(
        "set it in Rocket.toml ([release.security] {key} = \"...\") or in the environment \
         (ROCKET_SECURITY='{{{key}=\"...\"}}'); generate one with `openssl rand -base64 32`"
    );
    match value {
        Some(v) if v.is_empty() => Err(ConfigError(format!("security.{key} is empty: {how}"))),
        Some(v) if release && v.contains(DEV_MARKER) => Err(ConfigError(format!(
            "security.{key} is still the development value, refusing to start in release: {how}"
        ))),
        Some(v) => Ok(SecretString::from(v)),
        None if release => Err(ConfigError(format!(
            "security.{key} is not set, refusing to start in release: {how}"
        ))),
        None => {
            tracing::warn!("security.{key} is not set: using the DEVELOPMENT-ONLY value");
            Ok(SecretString::from(dev_value.to_owned()))
        }
    }
}

impl SecurityConfig {
    /// Reads and validates the `security` table of `figment`.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let raw: RawSecurity = if figment.contains("security") {
            figment
                .extract_inner("security")
                .map_err(|e| ConfigError(format!("invalid security configuration: {e}")))?
        } else {
            RawSecurity::default()
        };
        let release = is_release(figment);
        let cfg = SecurityConfig {
            secret_key: secret(raw.secret_key, "secret_key", DEV_SECRET_KEY, release)?,
            password_salt: secret(
                raw.password_salt,
                "password_salt",
                DEV_PASSWORD_SALT,
                release,
            )?,
            token_salt: raw.token_salt.unwrap_or_else(|| "remember-salt".into()),
            token_max_age: raw.token_max_age.unwrap_or(86_400),
            token_header: raw
                .token_header
                .unwrap_or_else(|| "Authentication-Token".into()),
            accept_bearer: raw.accept_bearer.unwrap_or(true),
            token_query_param: raw.token_query_param.filter(|p| !p.is_empty()),
            bcrypt_cost: raw.bcrypt_cost.unwrap_or(12),
            registerable: raw.registerable.unwrap_or(true),
            cookie_secure: raw.cookie_secure.unwrap_or(release),
            session_max_age: raw.session_max_age.unwrap_or(86_400),
            remember_max_age: raw.remember_max_age.unwrap_or(30 * 86_400),
            hash_slots: raw
                .hash_slots
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            hash_admission: Duration::from_millis(raw.hash_admission_ms.unwrap_or(1_000)),
            account_throttle: crate::db::ThrottleRule {
                limit: raw.account_limit.unwrap_or(10),
                window: raw.account_window.unwrap_or(15 * 60),
                base_delay: raw.account_base_delay.unwrap_or(2),
                max_delay: raw.account_max_delay.unwrap_or(60),
            },
            ip_limit_per_minute: raw.ip_limit_per_minute.unwrap_or(100),
            trusted_proxies: raw
                .trusted_proxies
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    p.parse().map_err(|_| {
                        ConfigError(format!(
                            "security.trusted_proxies: {p:?} is not an IP address or CIDR block"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let t = cfg.account_throttle;
        if t.limit < 2 || t.window < 1 || t.base_delay < 1 || t.max_delay < t.base_delay {
            return Err(ConfigError(
                "security.account_*: limit >= 2, window >= 1, 1 <= base_delay <= max_delay".into(),
            ));
        }
        if cfg.ip_limit_per_minute == 0 {
            return Err(ConfigError(
                "security.ip_limit_per_minute must be at least 1".into(),
            ));
        }
        if !(4..=31).contains(&cfg.bcrypt_cost) {
            return Err(ConfigError(format!(
                "security.bcrypt_cost must be between 4 and 31, not {}",
                cfg.bcrypt_cost
            )));
        }
        if cfg.token_header.trim().is_empty() {
            return Err(ConfigError(
                "security.token_header must not be empty".into(),
            ));
        }
        if cfg.secret_key.expose_secret().len() < 16 && release {
            return Err(ConfigError(
                "security.secret_key is shorter than 16 characters: use a long random value".into(),
            ));
        }
        Ok(cfg)
    }

    /// Cookie name of the session: `__Host-` prefixed when cookies are Secure.
    pub fn session_cookie_name(&self) -> &'static str {
        if self.cookie_secure {
            "__Host-session"
        } else {
            "session"
        }
    }
}

/// `databases.gatehouse`: where the database is and how the pool behaves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://…`; the scheme picks the backend.
    pub url: String,
    /// Most connections the pool opens.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections kept open when idle.
    #[serde(default)]
    pub min_connections: u32,
    /// Milliseconds any one database call may take (waiting for a
    /// connection, a lock or an answer) before the request gets 503.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds an idle connection may live.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
}

fn default_max_connections() -> u32 {
    (std::thread::available_parallelism().map_or(2, |n| n.get()) * 4) as u32
}
fn default_timeout_ms() -> u64 {
    1500
}
fn default_idle_timeout() -> u64 {
    300
}

impl DatabaseConfig {
    /// Reads `databases.gatehouse` from `figment`.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        figment.extract_inner("databases.gatehouse").map_err(|e| {
            ConfigError(format!(
                "databases.gatehouse is missing or invalid ({e}): set url in Rocket.toml \
                 ([default.databases.gatehouse] url = \"sqlite://gatehouse.db?mode=rwc\") or \
                 ROCKET_DATABASES='{{gatehouse={{url=\"postgres://127.0.0.1/gatehouse\"}}}}'"
            ))
        })
    }
}

/// What `gatehouse check-config` prints and what it objects to.
pub struct ConfigReport {
    /// The effective configuration, secrets masked.
    pub text: String,
    /// Weak or invalid settings; empty when the configuration is fine.
    pub problems: Vec<String>,
}

fn mask(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    if s.contains(DEV_MARKER) {
        "<DEVELOPMENT-ONLY value>".into()
    } else {
        format!("<set, {} characters>", s.chars().count())
    }
}

/// Checks a configuration the way an operator would before going live:
/// development secrets in release, bcrypt cost below 10, cookies without
/// `Secure` in release, and no stable Rocket secret key in release.
pub fn check(figment: &Figment) -> ConfigReport {
    let release = is_release(figment);
    let mut problems = Vec::new();
    let mut text = format!("profile: {}\n", figment.profile());
    // Rocket's default is a zero key, replaced by a random one in debug.
    let rocket_key = rocket::Config::from(figment).secret_key.is_provided();
    text.push_str(&format!(
        "secret_key (Rocket, cookie encryption): {}\n",
        if rocket_key {
            "<set>"
        } else {
            "<not set: random per start>"
        }
    ));
    if release && !rocket_key {
        problems.push("secret_key (Rocket's, for cookies) is not set: generate one with `openssl rand -base64 32`".into());
    }
    match DatabaseConfig::from_figment(figment) {
        Ok(db) => text.push_str(&format!(
            "databases.gatehouse.url: {}\ndatabases.gatehouse.max_connections: {}\ndatabases.gatehouse.timeout_ms: {}\n",
            crate::db::redact_url(&db.url),
            db.max_connections,
            db.timeout_ms
        )),
        Err(e) => problems.push(e.0),
    }
    match SecurityConfig::from_figment(figment) {
        Ok(c) => {
            text.push_str(&format!(
                "security.secret_key: {}\nsecurity.password_salt: {}\nsecurity.token_salt: {}\n\
                 security.token_max_age: {}\nsecurity.token_header: {}\nsecurity.accept_bearer: {}\n\
                 security.token_query_param: {}\nsecurity.bcrypt_cost: {}\nsecurity.registerable: {}\n\
                 security.cookie_secure: {}\nsecurity.session_max_age: {}\nsecurity.remember_max_age: {}\n\
                 security.hash_slots: {}\nsecurity.hash_admission_ms: {}\nsecurity.account_limit: {} per {} s, backoff {}..{} s\n\
                 security.ip_limit_per_minute: {}\nsecurity.trusted_proxies: {:?}",
                mask(&c.secret_key),
                mask(&c.password_salt),
                c.token_salt,
                c.token_max_age,
                c.token_header,
                c.accept_bearer,
                c.token_query_param.as_deref().unwrap_or("<off>"),
                c.bcrypt_cost,
                c.registerable,
                c.cookie_secure,
                c.session_max_age,
                c.remember_max_age,
                c.hash_slots,
                c.hash_admission.as_millis(),
                c.account_throttle.limit,
                c.account_throttle.window,
                c.account_throttle.base_delay,
                c.account_throttle.max_delay,
                c.ip_limit_per_minute,
                c.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ));
            if c.bcrypt_cost < 10 {
                problems.push(format!(
                    "security.bcrypt_cost = {} is weak: use 10 or more (12 is the default)",
                    c.bcrypt_cost
                ));
            }
            if release && !c.cookie_secure {
                problems.push("security.cookie_secure is off in release: session cookies would travel over plain HTTP".into());
            }
        }
        Err(e) => problems.push(e.0),
    }
    ConfigReport { text, problems }
}
