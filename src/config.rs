//! The `security` table of the Rocket configuration, and the database settings.
//!
//! Extracted once from Rocket's Figment at ignite, validated, then managed as
//! state. Each key is declared once: its field, its default (on the field)
//! and its doc. `check-config` prints the struct itself, so the report
//! cannot forget a key. See WIRE.md §10 for every key.

use std::net::IpAddr;
use std::str::FromStr;

use figment::{Figment, Profile};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// Marker that every development secret carries. A release build refuses to
/// start while any secret still contains it.
pub const DEV_MARKER: &str = "DEVELOPMENT-ONLY";
/// Marks a value the sample configurations (deploy/Rocket.toml) leave for
/// the operator to fill in; never accepted as a secret.
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// Rocket's own `secret_key` (cookie encryption): in release it must be set
/// and not a placeholder. Rocket would refuse it too, but in several lines.
pub fn check_rocket_secret(figment: &Figment) -> Result<(), ConfigError> {
    let value = figment.find_value("secret_key").ok();
    let text = value.as_ref().and_then(|v| v.as_str()).unwrap_or_default();
    let how = "generate one with `openssl rand -base64 32` and set it in Rocket.toml \
               (secret_key = \"...\") or ROCKET_SECRET_KEY";
    if text.contains(PLACEHOLDER) {
        return Err(ConfigError::Invalid {
            key: "secret_key",
            reason: format!("is still the {PLACEHOLDER} placeholder: {how}"),
        });
    }
    if is_release(figment) && value.is_none() {
        return Err(ConfigError::Missing {
            key: "secret_key",
            how: how.into(),
        });
    }
    Ok(())
}
/// Used in debug builds when `security.secret_key` is not set. NEVER in release.
pub const DEV_SECRET_KEY: &str = "gatehouse-DEVELOPMENT-ONLY-secret-key";
/// Used in debug builds when `security.password_salt` is not set. NEVER in release.
pub const DEV_PASSWORD_SALT: &str = "gatehouse-DEVELOPMENT-ONLY-password-salt";
/// `security.totp_secrets` of debug builds that set none, so two-factor
/// sign-in works under `cargo run` with no setup.
pub const DEV_TOTP_SECRET: &str = "gatehouse-DEVELOPMENT-ONLY-totp-secret";

/// A configuration that must not start, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required secret is not set (release).
    #[error("{key} is not set, refusing to start in release: {how}")]
    Missing {
        /// The full key, e.g. `security.secret_key`.
        key: &'static str,
        /// How to set it.
        how: String,
    },
    /// A secret still holds the development value (release).
    #[error("{key} is still the development value, refusing to start in release: {how}")]
    DevelopmentValue {
        /// The full key.
        key: &'static str,
        /// How to set it.
        how: String,
    },
    /// A value breaks its rule.
    #[error("{key}: {reason}")]
    Invalid {
        /// The full key (or key group).
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The table could not be read at all (unknown key, wrong type).
    #[error("{0}")]
    Unreadable(String),
}

/// A secret setting: never printed, never logged. Empty means "not set".
#[derive(Clone, Default, Deserialize)]
#[serde(from = "String")]
pub struct Secret(Option<SecretString>);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(Some(SecretString::from(s)))
    }
}

impl Secret {
    /// The secret, when set (for optional secrets).
    pub fn get(&self) -> Option<&SecretString> {
        self.0.as_ref().filter(|v| !v.expose_secret().is_empty())
    }

    /// The secret itself.
    pub fn expose(&self) -> &SecretString {
        self.0.as_ref().expect("resolved at load")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = match &self.0 {
            None => "<not set>".to_owned(),
            Some(v) if v.expose_secret().contains(DEV_MARKER) => {
                "<DEVELOPMENT-ONLY value>".to_owned()
            }
            Some(v) => format!("<set, {} characters>", v.expose_secret().chars().count()),
        };
        s.serialize_str(&text)
    }
}

/// An address block (`10.0.0.0/8`, `::1/128`, or a plain address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or CIDR block");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (s.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl IpNet {
    /// Whether `ip` is inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match (canonical_ip(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A service allowed to introspect tokens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionClient {
    /// Its client id (the Basic user name).
    pub id: String,
    /// Its secret (the Basic password); at least 16 characters.
    pub secret: Secret,
}

/// The throttle's rules: attempts per window, then a rising backoff.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRule {
    /// Attempts let through freely in one window.
    pub limit: i32,
    /// Window length, seconds.
    pub window: i64,
    /// First backoff once over the limit, seconds; doubles each time.
    pub base_delay: i32,
    /// Longest backoff, seconds: the real user is never kept out longer.
    pub max_delay: i32,
}

macro_rules! defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

defaults! {
    d_token_salt: String = "remember-salt".into();
    d_token_max_age: u64 = 86_400;
    d_token_header: String = "Authentication-Token".into();
    d_token_clock_skew: u64 = 30;
    d_true: bool = true;
    d_bcrypt_cost: u32 = 12;
    d_session_max_age: u64 = 86_400;
    d_remember_max_age: u64 = 30 * 86_400;
    d_hash_slots: usize = std::thread::available_parallelism().map_or(2, |n| n.get());
    d_hash_admission_ms: u64 = 1_000;
    d_account_limit: i32 = 10;
    d_account_window: i64 = 15 * 60;
    d_account_base_delay: i32 = 2;
    d_account_max_delay: i32 = 60;
    d_ip_limit_per_minute: u32 = 100;
    d_housekeeping_interval: u64 = 60;
    d_body_timeout_ms: u64 = 10_000;
    d_auth_user_id_header: String = "X-Auth-User-Id".into();
    d_auth_email_header: String = "X-Auth-Email".into();
    d_auth_roles_header: String = "X-Auth-Roles".into();
    d_reset_salt: String = "reset-salt".into();
    d_confirm_salt: String = "confirm-salt".into();
    d_change_email_salt: String = "change-email-salt".into();
    d_reset_within: u64 = 86_400;
    d_confirm_within: u64 = 2 * 86_400;
    d_change_email_within: u64 = 2 * 3600;
    d_mail_per_hour: i32 = 3;
    d_freshness: u64 = 86_400;
    d_totp_window: u64 = 1;
    d_tf_pending: u64 = 300;
    d_recovery_codes_n: usize = 5;
    d_refresh_max_age: u64 = 90 * 86_400;
    d_refresh_max_idle: u64 = 7 * 86_400;
    d_refresh_grace: u64 = 30;
    d_refresh_salt: String = "refresh-token-salt".into();
    d_refresh_cookie: String = "fs_refresh".into();
    d_pat_max_days: u64 = 366;
    d_tf_login_validity: u64 = 30 * 86_400;
    d_mail_dir: String = "mail".into();
    d_mail_from: String = "gatehouse <no-reply@localhost>".into();
    d_app_name: String = "gatehouse".into();
    d_mail_max_attempts: i32 = 8;
    d_mail_poll_ms: u64 = 2_000;
    d_smtp_timeout_ms: u64 = 10_000;
    d_max_connections: u32 = (std::thread::available_parallelism().map_or(2, |n| n.get()) * 4) as u32;
    d_timeout_ms: u64 = 1500;
    d_idle_timeout: u64 = 300;
}

/// Validated `security` settings. Every key of the `security` table is one
/// field here, with its default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Signs auth tokens (the Flask `SECRET_KEY` when migrating).
    #[serde(default)]
    pub secret_key: Secret,
    /// Key of the password pre-hash (Flask `SECURITY_PASSWORD_SALT`).
    #[serde(default)]
    pub password_salt: Secret,
    /// itsdangerous salt of auth tokens.
    #[serde(default = "d_token_salt")]
    pub token_salt: String,
    /// Tokens older than this many seconds are refused.
    #[serde(default = "d_token_max_age")]
    pub token_max_age: u64,
    /// Seconds a token's timestamp may be ahead of this instance's clock
    /// (instances' clocks differ a little); at most 300.
    #[serde(default = "d_token_clock_skew")]
    pub token_clock_skew: u64,
    /// Header carrying the token.
    #[serde(default = "d_token_header")]
    pub token_header: String,
    /// Also read `Authorization: Bearer <token>`.
    #[serde(default = "d_true")]
    pub accept_bearer: bool,
    /// Query parameter carrying a token, when enabled (off by default: URLs get logged).
    #[serde(default)]
    pub token_query_param: Option<String>,
    /// bcrypt work factor of new hashes.
    #[serde(default = "d_bcrypt_cost")]
    pub bcrypt_cost: u32,
    /// Serve `/register`.
    #[serde(default = "d_true")]
    pub registerable: bool,
    /// Secure + `__Host-` session cookie. Default: on in release, off in debug.
    #[serde(default)]
    pub cookie_secure: bool,
    /// Server-enforced lifetime of a plain session, seconds.
    #[serde(default = "d_session_max_age")]
    pub session_max_age: u64,
    /// A session not used for this many seconds ends (0: no inactivity
    /// limit, only the lifetimes).
    #[serde(default)]
    pub session_idle_timeout: u64,
    /// Lifetime of a "remember me" session, seconds.
    #[serde(default = "d_remember_max_age")]
    pub remember_max_age: u64,
    /// Concurrent bcrypt computations (default: one per core).
    #[serde(default = "d_hash_slots")]
    pub hash_slots: usize,
    /// Milliseconds a request waits for a hashing slot before a 503.
    #[serde(default = "d_hash_admission_ms")]
    pub hash_admission_ms: u64,
    /// Password attempts per account let through freely in one window
    /// (shared by every instance through the database).
    #[serde(default = "d_account_limit")]
    pub account_limit: i32,
    /// The account throttle's window, seconds.
    #[serde(default = "d_account_window")]
    pub account_window: i64,
    /// First backoff once over the limit, seconds; doubles each time.
    #[serde(default = "d_account_base_delay")]
    pub account_base_delay: i32,
    /// Longest backoff, seconds.
    #[serde(default = "d_account_max_delay")]
    pub account_max_delay: i32,
    /// Auth requests per minute from one client address (per instance).
    #[serde(default = "d_ip_limit_per_minute")]
    pub ip_limit_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks).
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    /// Origins (`https://app.example.com`) besides the request's own host
    /// that may send cookie-authenticated unsafe requests.
    #[serde(default)]
    pub trusted_origins: Vec<String>,
    /// Milliseconds an auth endpoint waits for a request body before 408.
    #[serde(default = "d_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Services that may call `POST /introspect` (HTTP Basic with `id` and
    /// `secret`); none by default.
    #[serde(default)]
    pub introspection_clients: Vec<IntrospectionClient>,
    /// `/auth/check`: the response header with the user's id.
    #[serde(default = "d_auth_user_id_header")]
    pub auth_user_id_header: String,
    /// `/auth/check`: the response header with the user's email.
    #[serde(default = "d_auth_email_header")]
    pub auth_email_header: String,
    /// `/auth/check`: the response header with the user's roles (comma-separated).
    #[serde(default = "d_auth_roles_header")]
    pub auth_roles_header: String,
    /// Seconds between purges of expired sessions and throttle rows.
    #[serde(default = "d_housekeeping_interval")]
    pub housekeeping_interval: u64,
    /// Serve `/metrics` on its own listener at this address (e.g.
    /// `"127.0.0.1:9464"`) and not on the main port. Off by default.
    #[serde(default)]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// A scrape must send `Authorization: Bearer <metrics_token>` (16
    /// characters or more). Without `metrics_address`, setting it serves
    /// `/metrics` on the main port. Off by default.
    #[serde(default)]
    pub metrics_token: Secret,
    /// Where users reach gatehouse (`https://auth.example.com`): links in
    /// mails start with it, never with a request's Host header. Debug
    /// default: `http://127.0.0.1:<port>`; required in release.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Serve `/reset` (forgot password: a link by mail).
    #[serde(default = "d_true")]
    pub recoverable: bool,
    /// New accounts must confirm their email (a link by mail) before they
    /// can sign in (FS `SECURITY_CONFIRMABLE`).
    #[serde(default)]
    pub confirmable: bool,
    /// With `confirmable`, unconfirmed accounts may still sign in.
    #[serde(default)]
    pub login_without_confirmation: bool,
    /// Serve `/change-email` (a new address takes effect once its link is
    /// followed).
    #[serde(default = "d_true")]
    pub change_email: bool,
    /// A completed password reset signs the user in.
    #[serde(default = "d_true")]
    pub auto_login_after_reset: bool,
    /// itsdangerous salt of reset links (FS `SECURITY_RESET_SALT`).
    #[serde(default = "d_reset_salt")]
    pub reset_salt: String,
    /// Salt of confirmation links (FS `SECURITY_CONFIRM_SALT`).
    #[serde(default = "d_confirm_salt")]
    pub confirm_salt: String,
    /// Salt of change-of-address links (FS `SECURITY_CHANGE_EMAIL_SALT`).
    #[serde(default = "d_change_email_salt")]
    pub change_email_salt: String,
    /// Seconds a reset link works (FS `RESET_PASSWORD_WITHIN`).
    #[serde(default = "d_reset_within")]
    pub reset_password_within: u64,
    /// Seconds a confirmation link works (FS `CONFIRM_EMAIL_WITHIN`).
    #[serde(default = "d_confirm_within")]
    pub confirm_email_within: u64,
    /// Seconds a change-of-address link works (FS `CHANGE_EMAIL_WITHIN`).
    #[serde(default = "d_change_email_within")]
    pub change_email_within: u64,
    /// Mail a notice when the password is changed.
    #[serde(default = "d_true")]
    pub send_password_change_notice: bool,
    /// Mail a notice when the password is reset.
    #[serde(default = "d_true")]
    pub send_password_reset_notice: bool,
    /// Mail the old address when the email is changed.
    #[serde(default = "d_true")]
    pub send_email_change_notice: bool,
    /// Mail a notice when two-factor sign-in is turned on or off.
    #[serde(default = "d_true")]
    pub send_two_factor_notice: bool,
    /// Mail a notice on a sign-in from a browser not seen before.
    #[serde(default)]
    pub notify_new_browser: bool,
    /// Flask-Security's `SECURITY_TOTP_SECRETS`: tag -> secret, which
    /// encrypt the authenticator keys in `tf_totp_secret`. Needed to sign
    /// in accounts that enrolled in two-factor through Flask-Security.
    #[serde(default, serialize_with = "serialize_secret_map")]
    pub totp_secrets: std::collections::BTreeMap<String, String>,
    /// Authenticator steps (30 s) before and after now whose codes count.
    #[serde(default = "d_totp_window")]
    pub totp_window: u64,
    /// Seconds between the password and the code of a two-factor sign-in.
    #[serde(default = "d_tf_pending")]
    pub two_factor_within: u64,
    /// Offer one-time recovery codes for two-factor sign-in (FS
    /// `MULTI_FACTOR_RECOVERY_CODES`; on here, off in FS).
    #[serde(default = "d_true")]
    pub recovery_codes: bool,
    /// Codes in a set (FS `MULTI_FACTOR_RECOVERY_CODES_N`).
    #[serde(default = "d_recovery_codes_n")]
    pub recovery_codes_n: usize,
    /// Fernet keys that encrypt stored recovery codes, newest first (FS
    /// `MULTI_FACTOR_RECOVERY_CODES_KEYS`); empty: stored in the clear, as FS.
    #[serde(default, serialize_with = "serialize_secret_list")]
    pub recovery_codes_keys: Vec<String>,
    /// Seconds an encrypted recovery code stays good (FS
    /// `MULTI_FACTOR_RECOVERY_CODE_TTL`); none: for ever.
    #[serde(default)]
    pub recovery_code_ttl: Option<u64>,
    /// Ask for a code at every sign-in (FS `TWO_FACTOR_ALWAYS_VALIDATE`).
    /// Off: a sign-in with "remember me" gets the `tf_validity` cookie and
    /// that browser skips the code for `two_factor_login_validity`.
    #[serde(default = "d_true")]
    pub two_factor_always_validate: bool,
    /// Seconds a remembered browser skips the code (FS
    /// `TWO_FACTOR_LOGIN_VALIDITY`, 30 days).
    #[serde(default = "d_tf_login_validity")]
    pub two_factor_login_validity: u64,
    /// Users with any of these roles must use two-factor sign-in: without
    /// it, their next sign-in goes through enrolment first.
    #[serde(default)]
    pub two_factor_required_roles: Vec<String>,
    /// Where "I lost my device" requests from the code page are mailed (FS
    /// `TWO_FACTOR_RESCUE_MAIL`); none: that option is not offered.
    #[serde(default)]
    pub two_factor_rescue_mail: Option<String>,
    /// Hand out Flask-Security 5.9 refresh tokens with auth tokens (FS
    /// `REFRESH_TOKEN`; off in FS), for `/refresh-token`.
    #[serde(default = "d_true")]
    pub refresh_token: bool,
    /// Seconds a refresh family works in all (FS `REFRESH_TOKEN_MAX_AGE`).
    #[serde(default = "d_refresh_max_age")]
    pub refresh_token_max_age: u64,
    /// Seconds a refresh family may go unused (FS `REFRESH_TOKEN_MAX_IDLE`).
    #[serde(default = "d_refresh_max_idle")]
    pub refresh_token_max_idle: u64,
    /// Seconds during which the refresh token just replaced still gets the
    /// same new pair (two tabs refreshing at once both succeed); later, its
    /// reuse revokes the family. 0: no grace, as FS.
    #[serde(default = "d_refresh_grace")]
    pub refresh_token_grace: u64,
    /// itsdangerous salt of refresh tokens (FS `REFRESH_TOKEN_SALT`).
    #[serde(default = "d_refresh_salt")]
    pub refresh_token_salt: String,
    /// Cookie that carries the refresh token (HttpOnly, SameSite=Strict;
    /// FS `REFRESH_TOKEN_COOKIE_NAME`); empty: in the JSON answer instead.
    #[serde(default = "d_refresh_cookie")]
    pub refresh_token_cookie_name: String,
    /// The longest lifetime of a personal access token, days.
    #[serde(default = "d_pat_max_days")]
    pub personal_token_max_days: u64,
    /// Seconds since the last password sign-in (or re-authentication at
    /// `/verify`) within which sensitive changes (the email) are allowed;
    /// older sessions and tokens must re-authenticate first (FS
    /// `FRESHNESS`). 0 turns the check off.
    #[serde(default = "d_freshness")]
    pub freshness: u64,
    /// Link mails (reset, confirm, change of address) one address can be
    /// sent per hour; more requests answer the same and send nothing.
    #[serde(default = "d_mail_per_hour")]
    pub mail_per_address_per_hour: i32,
}

/// Whether this is production: every profile but `debug` (the one
/// `cargo run` selects) is. A release binary started with any other
/// `ROCKET_PROFILE` (`production`, `staging`, `default`, ...) gets no
/// development conveniences.
fn is_release(figment: &Figment) -> bool {
    figment.profile() != Profile::const_new("debug")
}

fn how(key: &str) -> String {
    format!(
        "set it in Rocket.toml ([release.security] {key} = \"...\") or in the environment \
         (ROCKET_SECURITY='{{{key}=\"...\"}}'); generate one with `openssl rand -base64 32`"
    )
}

/// A secret must be present and, in release, must not be a development value.
fn resolve_secret(
    secret: &mut Secret,
    key: &'static str,
    short: &str,
    dev_value: &str,
    release: bool,
) -> Result<(), ConfigError> {
    match &secret.0 {
        Some(v) if v.expose_secret().is_empty() => Err(ConfigError::Invalid {
            key,
            reason: format!("is empty: {}", how(short)),
        }),
        Some(v) if v.expose_secret().contains(PLACEHOLDER) => Err(ConfigError::Invalid {
            key,
            reason: format!("is still the {PLACEHOLDER} placeholder: {}", how(short)),
        }),
        Some(v) if release && v.expose_secret().contains(DEV_MARKER) => {
            Err(ConfigError::DevelopmentValue {
                key,
                how: how(short),
            })
        }
        Some(_) => Ok(()),
        None if release => Err(ConfigError::Missing {
            key,
            how: how(short),
        }),
        None => {
            tracing::warn!("{key} is not set: using the DEVELOPMENT-ONLY value");
            *secret = Secret::from(dev_value.to_owned());
            Ok(())
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl SecurityConfig {
    /// Reads and validates the `security` table of `figment`.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let release = is_release(figment);
        let mut cfg: SecurityConfig = figment
            .focus("security")
            .extract()
            .map_err(|e| ConfigError::Unreadable(format!("invalid security configuration: {e}")))?;
        if figment.find_value("security.cookie_secure").is_err() {
            cfg.cookie_secure = release;
        }
        cfg.token_query_param = cfg.token_query_param.filter(|p| !p.is_empty());
        resolve_secret(
            &mut cfg.secret_key,
            "security.secret_key",
            "secret_key",
            DEV_SECRET_KEY,
            release,
        )?;
        resolve_secret(
            &mut cfg.password_salt,
            "security.password_salt",
            "password_salt",
            DEV_PASSWORD_SALT,
            release,
        )?;
        if figment.find_value("security.totp_secrets").is_err() && !release {
            cfg.totp_secrets
                .insert("1".to_owned(), DEV_TOTP_SECRET.to_owned());
        }
        if !cfg.two_factor_required_roles.is_empty() && cfg.totp_secrets.is_empty() {
            return Err(invalid(
                "security.two_factor_required_roles",
                "needs security.totp_secrets: without them nobody can enrol, so those users could never sign in",
            ));
        }
        if release && cfg.totp_secrets.values().any(|v| v.contains(DEV_MARKER)) {
            return Err(ConfigError::DevelopmentValue {
                key: "security.totp_secrets",
                how: "set your own, e.g. totp_secrets = { 1 = \"<openssl rand -base64 32>\" } (Flask-Security's SECURITY_TOTP_SECRETS when migrating)".to_owned(),
            });
        }
        let t = cfg.account_throttle();
        if t.limit < 2 || t.window < 1 || t.base_delay < 1 || t.max_delay < t.base_delay {
            return Err(invalid(
                "security.account_*",
                "limit >= 2, window >= 1, 1 <= base_delay <= max_delay",
            ));
        }
        if cfg.ip_limit_per_minute == 0 {
            return Err(invalid(
                "security.ip_limit_per_minute",
                "must be at least 1",
            ));
        }
        if !(4..=31).contains(&cfg.bcrypt_cost) {
            return Err(invalid(
                "security.bcrypt_cost",
                format!("must be between 4 and 31, not {}", cfg.bcrypt_cost),
            ));
        }
        if cfg.token_header.trim().is_empty() {
            return Err(invalid("security.token_header", "must not be empty"));
        }
        for origin in &cfg.trusted_origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@', ' '])) {
                return Err(invalid(
                    "security.trusted_origins",
                    format!("{origin:?} is not an origin: scheme://host[:port], e.g. \"https://app.example.com\""),
                ));
            }
        }
        for (key, name) in [
            ("security.auth_user_id_header", &cfg.auth_user_id_header),
            ("security.auth_email_header", &cfg.auth_email_header),
            ("security.auth_roles_header", &cfg.auth_roles_header),
            ("security.token_header", &cfg.token_header),
        ] {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(key, format!("{name:?} is not a header name")));
            }
        }
        for client in &cfg.introspection_clients {
            let short = client
                .secret
                .0
                .as_ref()
                .is_none_or(|s| s.expose_secret().len() < 16);
            if client.id.is_empty() || client.id.contains(':') || short {
                return Err(invalid(
                    "security.introspection_clients",
                    "each needs an id (no ':') and a secret of 16 characters or more",
                ));
            }
        }
        if cfg
            .metrics_token
            .0
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            return Err(invalid(
                "security.metrics_token",
                "is shorter than 16 characters: use a long random value",
            ));
        }
        if let Some(url) = &cfg.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if !rest.is_some_and(|r| {
                !r.is_empty() && !r.starts_with('/') && !r.contains(['?', '#', '@', ' '])
            }) {
                return Err(invalid(
                    "security.public_url",
                    format!("{url:?} is not a base URL: scheme://host[:port][/path], e.g. \"https://auth.example.com\""),
                ));
            }
            cfg.public_url = Some(url.trim_end_matches('/').to_owned());
        }
        let salts = [
            &cfg.token_salt,
            &cfg.reset_salt,
            &cfg.confirm_salt,
            &cfg.change_email_salt,
            &cfg.refresh_token_salt,
        ];
        if (1..salts.len()).any(|i| salts[..i].contains(&salts[i])) {
            return Err(invalid(
                "security.*_salt",
                "token_salt, reset_salt, confirm_salt, change_email_salt and refresh_token_salt must differ: \
                 a token of one kind must never pass for another",
            ));
        }
        if let Some(i) = cfg.recovery_codes_keys.iter().position(|k| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE
                .decode(k.trim())
                .map_or(true, |raw| raw.len() != 32)
        }) {
            return Err(invalid(
                "security.recovery_codes_keys",
                format!("key {i} is not a Fernet key (32 bytes, URL-safe base64, as Fernet.generate_key() makes)"),
            ));
        }
        if !(1..=20).contains(&cfg.recovery_codes_n) {
            return Err(invalid("security.recovery_codes_n", "must be 1 to 20"));
        }
        if cfg.mail_per_address_per_hour < 1 {
            return Err(invalid(
                "security.mail_per_address_per_hour",
                "must be at least 1",
            ));
        }
        if cfg.token_clock_skew > 300 {
            return Err(invalid(
                "security.token_clock_skew",
                "must be at most 300 seconds",
            ));
        }
        if cfg.housekeeping_interval == 0 {
            return Err(invalid(
                "security.housekeeping_interval",
                "must be at least 1",
            ));
        }
        if cfg.secret_key.expose().expose_secret().len() < 16 && release {
            return Err(invalid(
                "security.secret_key",
                "is shorter than 16 characters: use a long random value",
            ));
        }
        Ok(cfg)
    }

    /// The account throttle's rule.
    pub fn account_throttle(&self) -> ThrottleRule {
        ThrottleRule {
            limit: self.account_limit,
            window: self.account_window,
            base_delay: self.account_base_delay,
            max_delay: self.account_max_delay,
        }
    }

    /// How long an auth endpoint waits for a request body.
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_timeout_ms.max(1))
    }

    /// How long a request waits for a hashing slot.
    pub fn hash_admission(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.hash_admission_ms)
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
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://…`; the scheme picks the backend.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// Most connections the pool opens.
    #[serde(default = "d_max_connections")]
    pub max_connections: u32,
    /// Connections kept open when idle.
    #[serde(default)]
    pub min_connections: u32,
    /// Milliseconds any one database call may take (waiting for a
    /// connection, a lock or an answer) before the request gets 503.
    #[serde(default = "d_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds an idle connection may live.
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout: u64,
}

/// How a secret shows in `check-config`: never its value.
fn redacted(value: &str) -> String {
    if value.contains(DEV_MARKER) {
        "<DEVELOPMENT-ONLY value>".to_owned()
    } else {
        format!("<set, {} characters>", value.chars().count())
    }
}

fn serialize_secret_map<S: Serializer>(
    map: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter().map(|(k, v)| (k, redacted(v))))
}

fn serialize_secret_list<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(|v| redacted(v)))
}

fn serialize_redacted<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

impl DatabaseConfig {
    /// Reads `databases.gatehouse` from `figment`.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        figment.extract_inner("databases.gatehouse").map_err(|e| {
            ConfigError::Unreadable(format!(
                "databases.gatehouse is missing or invalid ({e}): set url in Rocket.toml \
                 ([default.databases.gatehouse] url = \"sqlite://gatehouse.db?mode=rwc\") or \
                 ROCKET_DATABASES='{{gatehouse={{url=\"postgres://127.0.0.1/gatehouse\"}}}}'"
            ))
        })
    }
}

/// How mails leave (`mail.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// An SMTP server (`smtp_host`, …).
    Smtp,
    /// `.eml` files in `dir`, links logged: for development.
    File,
}

/// How the SMTP connection is secured (`mail.smtp_security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required), port 587.
    Starttls,
    /// TLS from the first byte, port 465.
    Tls,
    /// No encryption (a relay on localhost), port 25.
    None,
}

/// `mail`: the outbox's transport and the mails' look.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `smtp` or `file`. Debug default: `file`; release must choose.
    #[serde(default)]
    pub transport: Option<MailTransport>,
    /// The folder `file` writes to.
    #[serde(default = "d_mail_dir")]
    pub dir: String,
    /// The SMTP server.
    #[serde(default)]
    pub smtp_host: Option<String>,
    /// Its port (default by `smtp_security`: 587, 465 or 25).
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default = "d_starttls")]
    pub smtp_security: SmtpSecurity,
    /// The SMTP user name, when the server wants one.
    #[serde(default)]
    pub smtp_username: Option<String>,
    /// The SMTP password.
    #[serde(default)]
    pub smtp_password: Secret,
    /// A PEM file of the CA that signs the SMTP server's certificate (an
    /// internal relay); the public roots otherwise.
    #[serde(default)]
    pub smtp_ca_file: Option<String>,
    /// Milliseconds an SMTP conversation may take.
    #[serde(default = "d_smtp_timeout_ms")]
    pub smtp_timeout_ms: u64,
    /// The From header.
    #[serde(default = "d_mail_from")]
    pub from: String,
    /// The name mails and pages use for this service.
    #[serde(default = "d_app_name")]
    pub app_name: String,
    /// Attempts before a mail is given up.
    #[serde(default = "d_mail_max_attempts")]
    pub max_attempts: i32,
    /// Milliseconds between two looks at the outbox (a request that queues
    /// a mail wakes its own instance's worker at once).
    #[serde(default = "d_mail_poll_ms")]
    pub poll_interval_ms: u64,
    /// The file transport logs each mail's link (debug builds only; not a
    /// setting).
    #[serde(skip)]
    pub log_links: bool,
}

fn d_starttls() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl MailConfig {
    /// Reads and validates `mail` from `figment`. In release a transport
    /// must be chosen when `needed` (a flow that sends mail is on).
    pub fn from_figment(figment: &Figment, needed: bool) -> Result<Self, ConfigError> {
        let mut cfg: MailConfig = figment
            .focus("mail")
            .extract()
            .map_err(|e| ConfigError::Unreadable(format!("invalid mail configuration: {e}")))?;
        match cfg.transport {
            None if needed && is_release(figment) => {
                return Err(ConfigError::Missing {
                    key: "mail.transport",
                    how: "password reset, email confirmation and notices send mail: set \
                          transport = \"smtp\" (with smtp_host) or transport = \"file\" (with dir) \
                          in [release.mail], or ROCKET_MAIL='{transport=\"smtp\",smtp_host=\"...\"}'"
                        .into(),
                })
            }
            None => cfg.transport = Some(MailTransport::File),
            Some(MailTransport::Smtp) if cfg.smtp_host.as_deref().is_none_or(str::is_empty) => {
                return Err(invalid("mail.smtp_host", "is required with transport = \"smtp\""))
            }
            Some(_) => {}
        }
        if cfg.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail.from",
                format!(
                    "{:?} is not a mailbox, e.g. \"gatehouse <no-reply@example.com>\"",
                    cfg.from
                ),
            ));
        }
        if cfg.max_attempts < 1 {
            return Err(invalid("mail.max_attempts", "must be at least 1"));
        }
        cfg.log_links = !is_release(figment);
        if cfg
            .smtp_password
            .0
            .as_ref()
            .is_some_and(|p| p.expose_secret().contains(PLACEHOLDER))
        {
            return Err(invalid(
                "mail.smtp_password",
                format!("is still the {PLACEHOLDER} placeholder"),
            ));
        }
        Ok(cfg)
    }

    /// The chosen transport (set by [`MailConfig::from_figment`]).
    pub fn transport(&self) -> MailTransport {
        self.transport.unwrap_or(MailTransport::File)
    }

    /// The SMTP port: the configured one, else the usual one for the
    /// security mode.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: Some(MailTransport::File),
            dir: d_mail_dir(),
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: Secret::default(),
            smtp_ca_file: None,
            smtp_timeout_ms: d_smtp_timeout_ms(),
            from: d_mail_from(),
            app_name: d_app_name(),
            max_attempts: d_mail_max_attempts(),
            poll_interval_ms: d_mail_poll_ms(),
            log_links: false,
        }
    }
}

impl SecurityConfig {
    /// Whether any flow that sends mail is on.
    pub fn sends_mail(&self) -> bool {
        self.recoverable
            || self.confirmable
            || self.change_email
            || self.send_password_change_notice
            || self.notify_new_browser
    }

    /// Fills in `public_url` where it was not set: in debug, this server's
    /// own address; in release, an error when mails need it.
    pub fn resolve_public_url(&mut self, figment: &Figment) -> Result<(), ConfigError> {
        if self.public_url.is_some() || !self.sends_mail() {
            return Ok(());
        }
        if is_release(figment) {
            return Err(ConfigError::Missing {
                key: "security.public_url",
                how: "links in mails start with it: set public_url = \"https://auth.example.com\" \
                      in [release.security]"
                    .into(),
            });
        }
        let port: u16 = figment.extract_inner("port").unwrap_or(8000);
        let address: String = figment
            .extract_inner("address")
            .unwrap_or_else(|_| "127.0.0.1".into());
        let host = match address.as_str() {
            "0.0.0.0" | "::" | "" => "127.0.0.1".to_owned(),
            a if a.contains(':') => format!("[{a}]"),
            a => a.to_owned(),
        };
        self.public_url = Some(format!("http://{host}:{port}"));
        Ok(())
    }
}

/// A database URL with any password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// What `gatehouse check-config` prints and what it objects to.
pub struct ConfigReport {
    /// The effective configuration, secrets masked.
    pub text: String,
    /// Weak or invalid settings; empty when the configuration is fine.
    pub problems: Vec<String>,
}

/// `prefix.key: value` for every field of `value`, secrets masked by their
/// own Serialize.
fn report_lines(prefix: &str, value: &impl Serialize, out: &mut String) {
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(value) {
        for (k, v) in map {
            let shown = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => "<off>".into(),
                other => other.to_string(),
            };
            out.push_str(&format!("\n{prefix}.{k}: {shown}"));
        }
    }
}

/// Checks a configuration the way an operator would before going live:
/// development secrets in release, bcrypt cost below 10, cookies without
/// `Secure` in release, and no stable Rocket secret key in release.
pub fn check(figment: &Figment) -> ConfigReport {
    let release = is_release(figment);
    let mut problems = Vec::new();
    let mut text = format!("profile: {}", figment.profile());
    // Rocket's cookie key: random per start when not set (debug only).
    let rocket_key = figment.find_value("secret_key").is_ok();
    text.push_str(&format!(
        "\nsecret_key (Rocket, cookie encryption): {}",
        if rocket_key {
            "<set>"
        } else {
            "<not set: random per start>"
        }
    ));
    if let Err(e) = check_rocket_secret(figment) {
        problems.push(format!("{e} (Rocket's, for cookies)"));
    }
    match DatabaseConfig::from_figment(figment) {
        Ok(db) => report_lines("databases.gatehouse", &db, &mut text),
        Err(e) => problems.push(e.to_string()),
    }
    match SecurityConfig::from_figment(figment) {
        Ok(mut c) => {
            if let Err(e) = c.resolve_public_url(figment) {
                problems.push(e.to_string());
            }
            match MailConfig::from_figment(figment, c.sends_mail()) {
                Ok(mail) => report_lines("mail", &mail, &mut text),
                Err(e) => problems.push(e.to_string()),
            }
            report_lines("security", &c, &mut text);
            // Development values are public: fine for `cargo run`, never
            // for a server anyone else reaches, whatever the profile says.
            for (key, secret) in [
                ("security.secret_key", &c.secret_key),
                ("security.password_salt", &c.password_salt),
            ] {
                if secret.expose().expose_secret().contains(DEV_MARKER) {
                    problems.push(format!(
                        "{key} is the public development value (or not set): {}",
                        how(key.trim_start_matches("security."))
                    ));
                }
            }
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
        Err(e) => problems.push(e.to_string()),
    }
    ConfigReport { text, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    fn base() -> Figment {
        Figment::new()
            .merge(("security.secret_key", "a-long-enough-test-key"))
            .merge(("security.password_salt", "a-salt"))
            .merge(("databases.gatehouse.url", "sqlite://x.db"))
    }

    #[test]
    fn the_report_names_every_key_once() {
        let report = check(&base());
        // Every field of the struct appears, as serialized from it.
        let cfg = SecurityConfig::from_figment(&base()).unwrap();
        let serde_json::Value::Object(fields) = serde_json::to_value(&cfg).unwrap() else {
            panic!("an object")
        };
        for key in fields.keys() {
            let line = format!("\nsecurity.{key}: ");
            assert_eq!(
                report.text.matches(&line).count(),
                1,
                "{key}: {}",
                report.text
            );
        }
        assert!(report
            .text
            .contains("security.secret_key: <set, 22 characters>"));
        assert!(!report.text.contains("a-long-enough-test-key"));
        assert!(!report.text.contains("a-salt"));
    }

    #[test]
    fn errors_name_their_key() {
        let bad = base().merge(("security.bcrypt_cost", 3));
        assert!(matches!(
            SecurityConfig::from_figment(&bad),
            Err(ConfigError::Invalid {
                key: "security.bcrypt_cost",
                ..
            })
        ));
        let release = Figment::new().select("production");
        assert!(matches!(
            SecurityConfig::from_figment(&release),
            Err(ConfigError::Missing {
                key: "security.secret_key",
                ..
            })
        ));
        let dev = Figment::new()
            .merge(("security.secret_key", DEV_SECRET_KEY))
            .select("staging");
        assert!(matches!(
            SecurityConfig::from_figment(&dev),
            Err(ConfigError::DevelopmentValue {
                key: "security.secret_key",
                ..
            })
        ));
        for bad in [
            "null",
            "app.example.com",
            "https://a.example/path",
            "https://",
        ] {
            let f = base().merge(("security.trusted_origins", vec![bad]));
            assert!(
                matches!(
                    SecurityConfig::from_figment(&f),
                    Err(ConfigError::Invalid {
                        key: "security.trusted_origins",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let ok = base().merge((
            "security.trusted_origins",
            vec!["https://app.example.com:8443"],
        ));
        assert!(SecurityConfig::from_figment(&ok).is_ok());
        let unknown = base().merge(("security.nonsense", 1));
        assert!(matches!(
            SecurityConfig::from_figment(&unknown),
            Err(ConfigError::Unreadable(_))
        ));
    }
}
