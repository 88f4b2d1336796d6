//! The auth core: every flow (sign-in, register, change password, verify,
//! rotate, sign out, session and token checks) with no Rocket types. It
//! reads the time from an injected [`clock::Clock`] and fails with its own
//! [`CoreError`]; the HTTP adapters map that to a status in one place.

pub mod account;
pub mod admin;
pub mod clock;
pub mod devices;
pub mod error;
pub mod fernet;
pub mod links;
pub mod mfcodes;
pub mod password;
pub mod pat;
pub mod recovery;
pub mod refresh;
pub mod scrape;
pub mod session;
pub mod signin;
pub mod token;
pub mod totp;
pub mod twofactor;
pub mod validate;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{ConfigError, MailConfig, SecurityConfig};
use crate::db::{Db, DbError, User};
use crate::metrics::Metrics;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{msg, CoreError, FieldErrors};
use password::Hasher;
use secrecy::ExposeSecret;
use token::TokenSigner;

/// Everything the flows need: settings, storage, hashing, signing, limits
/// and the clock. Built once at start, shared by every request.
pub struct Security {
    /// Validated `security` settings.
    pub config: SecurityConfig,
    /// The database pool.
    pub db: Db,
    /// The bounded bcrypt service.
    pub hasher: Hasher,
    /// Token signer keyed from `secret_key` and `token_salt`.
    pub signer: TokenSigner,
    /// Auth requests per client address (in memory, per instance).
    pub ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// The time, for every expiry, throttle and token decision.
    pub clock: SharedClock,
    /// What the server counts (requests, sign-ins, limits, hashing, database).
    pub metrics: Arc<Metrics>,
    /// The signers of the links mails carry (reset, confirm, change email).
    pub links: links::Links,
    /// How mails leave (the outbox worker reads it).
    pub mail: MailConfig,
    /// Wakes this instance's outbox worker when a mail was queued.
    pub mail_wakeup: Arc<tokio::sync::Notify>,
}

/// Who a token authenticates.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The active user.
    pub user: User,
    /// The device it was minted for, if any.
    pub device: Option<String>,
    /// The roles it may use, for a limited personal access token.
    pub scope: Option<Vec<String>>,
    /// A personal access token (not a sign-in's token).
    pub pat: bool,
    /// When it was issued (unix seconds).
    pub iat: u64,
    /// When it stops being accepted (unix seconds).
    pub exp: u64,
    /// Its primary authentication time (`fs_paa`; 0 for a personal access
    /// token, which is never fresh).
    pub paa: f64,
}

/// An active token, as introspection tells it.
#[derive(Debug, Clone)]
pub struct Introspection {
    /// The user it names.
    pub user: User,
    /// When it was issued (unix seconds).
    pub iat: u64,
    /// When it stops being accepted (unix seconds).
    pub exp: u64,
    /// The user's role names.
    pub roles: Vec<String>,
}

/// The per-address limiter for `per_minute` auth requests a minute, with a
/// burst of the same size.
pub fn ip_limiter(per_minute: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    RateLimiter::keyed(Quota::per_minute(
        NonZeroU32::new(per_minute.max(1)).expect("at least 1"),
    ))
}

/// A throttle key for an email: `prefix:` and the SHA-256 of its canonical
/// form ([`validate::canonical_email`]), so keys have a bounded length
/// whatever the input. Sign-in counts on the key of the account's stored
/// email when the database finds one, so every spelling it matches (letter
/// case, Unicode folds that differ between SQLite, PostgreSQL and Rust)
/// counts on one key, and on the key of the typed email otherwise: both
/// are the same key for a spelling Rust folds alike, so the count never
/// tells whether the account exists.
pub fn email_key(prefix: &str, email: &str) -> String {
    use sha2::{Digest, Sha256};
    let canonical = validate::canonical_email(email);
    format!("{prefix}:{}", hex(&Sha256::digest(canonical.as_bytes())))
}

/// The per-address limit's key: an IPv4 address, or an IPv6 address's /64
/// (one client commonly holds a whole /64 and can rotate through it).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match crate::config::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Unix seconds as "2026-12-01 20:35 UTC" (pages, the CLI).
pub fn utc_minutes(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `N` bytes from the OS random source, as lowercase hex.
pub fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex(&bytes)
}

/// A new fs_uniquifier: 32 lowercase hex characters from 16 CSPRNG bytes.
pub fn new_uniquifier() -> String {
    random_hex::<16>()
}

/// A new `fs_webauthn_user_handle` as FS makes it: a random UUID (version
/// 4) as 32 lowercase hex characters (Python's `uuid.uuid4().hex`).
pub fn new_webauthn_user_handle() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex(&bytes)
}

/// The identities of a new account with this email.
pub fn new_ids(email: &str) -> crate::db::NewIds {
    crate::db::NewIds {
        email_key: validate::canonical_email(email),
        uniquifier: new_uniquifier(),
        webauthn_user_handle: new_webauthn_user_handle(),
    }
}

impl Security {
    /// Builds the core over an open database: the hashing threads, the
    /// token signer and the limits.
    pub fn new(config: SecurityConfig, db: Db, clock: SharedClock) -> Result<Self, ConfigError> {
        let hasher = Hasher::new(
            config.password_salt.expose().clone(),
            config.bcrypt_cost,
            config.hash_slots,
            config.hash_admission(),
        )
        .map_err(|e| ConfigError::Invalid {
            key: "security.bcrypt_cost",
            reason: e.to_string(),
        })?;
        let metrics = Arc::new(Metrics::new());
        let hasher = hasher.with_metrics(Arc::clone(&metrics));
        let db = db.with_metrics(Arc::clone(&metrics));
        let signer = TokenSigner::new(config.secret_key.expose(), &config.token_salt);
        let links = links::Links::new(
            config.secret_key.expose(),
            [
                &config.reset_salt,
                &config.confirm_salt,
                &config.change_email_salt,
            ],
        );
        let ip_limiter = ip_limiter(config.ip_limit_per_minute);
        Ok(Security {
            config,
            db,
            hasher,
            signer,
            ip_limiter,
            clock,
            metrics,
            links,
            mail: MailConfig::default(),
            mail_wakeup: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Now, in whole unix seconds, from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// The active user a token names. A bad, expired or revoked token reads
    /// as nobody (`Ok(None)`); `Err` only when the database cannot answer.
    pub async fn token_user(&self, token: &str) -> Result<Option<User>, CoreError> {
        Ok(self.token_auth(token).await?.map(|t| t.user))
    }

    /// Who a token authenticates, with its device (a gatehouse token) or
    /// its scope (a personal access token). One indexed lookup: a device
    /// token also needs its device alive (signed out: refused at once, on
    /// every instance).
    pub async fn token_auth(&self, token: &str) -> Result<Option<TokenAuth>, CoreError> {
        if pat::is_pat(token) {
            return Ok(self.pat_user(token).await?.map(|p| TokenAuth {
                user: p.user,
                device: None,
                scope: p.scope,
                pat: true,
                iat: p.created_at.max(0) as u64,
                exp: p.expires_at.max(0) as u64,
                paa: 0.0,
            }));
        }
        let now = self.now();
        let claims = match self.signer.verify_token(
            token,
            now.max(0) as u64,
            self.config.token_max_age,
            self.config.token_clock_skew,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(reason = %e, "token refused");
                return Ok(None);
            }
        };
        let user = match &claims.device {
            Some(d) => match self.db.user_by_device(&claims.uid, d, now).await? {
                Some((user, last_used)) => {
                    // The last use, at most once a minute.
                    if now - last_used >= 60 {
                        self.db.touch_device(d, now).await?;
                    }
                    Some(user)
                }
                None => None,
            },
            None => self
                .db
                .user_by_uniquifier(&claims.uid)
                .await?
                .filter(|u| u.active),
        };
        Ok(user.map(|user| TokenAuth {
            user,
            device: claims.device,
            scope: None,
            pat: false,
            iat: claims.iat,
            exp: claims.iat + self.config.token_max_age,
            paa: claims.paa,
        }))
    }

    /// The account an email names, in any spelling that has the same
    /// canonical form.
    pub async fn find_user(&self, email: &str) -> Result<Option<User>, CoreError> {
        let key = validate::canonical_email(email);
        Ok(self.db.user_by_email(&key, email.trim()).await?)
    }

    /// Gives every account Flask-Security wrote its canonical email key.
    pub async fn key_emails(&self) -> Result<(), CoreError> {
        Ok(key_emails(&self.db).await?)
    }

    /// What a token stands for, for token introspection (RFC 7662): the
    /// active user, when it was issued and when it expires, and the user's
    /// roles; `None` for anything bad, expired, revoked or inactive (the
    /// caller is never told which).
    ///
    /// The same check as every request's ([`Self::token_auth`]): a signed-out
    /// device's token or a revoked personal access token is inactive; a
    /// limited one reports only its roles.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, CoreError> {
        let Some(t) = self.token_auth(token).await? else {
            return Ok(None);
        };
        let roles = self.db.user_roles(t.user.id).await?;
        let roles = roles
            .into_iter()
            .map(|r| r.name)
            .filter(|name| t.scope.as_ref().is_none_or(|s| s.contains(name)))
            .collect();
        Ok(Some(Introspection {
            iat: t.iat,
            exp: t.exp,
            roles,
            user: t.user,
        }))
    }

    /// Whether `id` and `secret` name a configured introspection client
    /// (secrets compared in constant time).
    pub fn introspection_client(&self, id: &str, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.config
            .introspection_clients
            .iter()
            .fold(false, |found, c| {
                let same = bool::from(c.id.as_bytes().ct_eq(id.as_bytes()))
                    & bool::from(
                        c.secret
                            .expose()
                            .expose_secret()
                            .as_bytes()
                            .ct_eq(secret.as_bytes()),
                    );
                found | same
            })
    }

    /// Revokes every session and token of a user at once by rotating their
    /// fs_uniquifier (storing `new_password_hash` in the same statement, for
    /// a password change; the session rows go in the same transaction).
    /// `reason` goes to the log. Returns the new fs_uniquifier.
    pub async fn rotate(
        &self,
        user_id: i32,
        new_password_hash: Option<&str>,
        reason: &'static str,
    ) -> Result<String, CoreError> {
        self.rotate_from(user_id, None, new_password_hash, reason)
            .await
    }

    /// [`Self::rotate`], only while the uniquifier is still `expected` (when
    /// given); [`CoreError::NoSuchUser`] when it moved on.
    pub async fn rotate_from(
        &self,
        user_id: i32,
        expected: Option<&str>,
        new_password_hash: Option<&str>,
        reason: &'static str,
    ) -> Result<String, CoreError> {
        let uid = new_uniquifier();
        if !self
            .db
            .rotate_uniquifier(user_id, &uid, new_password_hash, expected)
            .await?
        {
            return Err(CoreError::NoSuchUser);
        }
        tracing::info!(
            event = "rotation",
            reason,
            user_id,
            "fs_uniquifier rotated: every session and token revoked"
        );
        Ok(uid)
    }

    /// The longest window any throttle row counts in: the account
    /// throttle's, or the hour of the mail limits. Rows are purged only
    /// after it, so no count starts over early.
    pub fn throttle_window(&self) -> i64 {
        self.config.account_window.max(3_600)
    }

    /// Purges what expired: session records past their lifetime and
    /// throttle rows whose window and backoff are over. Run by the
    /// background housekeeping task, never on a request.
    pub async fn housekeeping(&self) -> Result<(u64, u64), DbError> {
        housekeeping(&self.db, self.now(), self.throttle_window()).await
    }
}

/// One housekeeping pass at `now`: purges expired session records and
/// throttle rows whose `window` and backoff are over, and keys the emails
/// of accounts Flask-Security wrote. Returns how many rows were purged.
pub async fn housekeeping(db: &Db, now: i64, window: i64) -> Result<(u64, u64), DbError> {
    let sessions = db.purge_sessions(now).await?;
    let throttle = db.purge_throttle(now, window).await?;
    // Devices once nothing of them can work; refresh families past their
    // age (FS deletes them when it makes a new one).
    db.purge_devices(now).await?;
    db.purge_refresh(crate::db::DbTime::from_unix_f64(now as f64))
        .await?;
    key_emails(db).await?;
    Ok((sessions, throttle))
}

/// Sets the canonical email key of every account that has none (rows
/// Flask-Security wrote), in batches. An account whose key another already
/// has (look-alike emails from before gatehouse) keeps none and is logged:
/// merge the two.
pub async fn key_emails(db: &Db) -> Result<(), DbError> {
    let mut after = 0;
    loop {
        let batch = db.unkeyed_users(after, 500).await?;
        let Some(&(last, _)) = batch.last() else {
            return Ok(());
        };
        for (id, email) in batch {
            match db
                .set_email_key(id, &validate::canonical_email(&email), &email)
                .await
            {
                Ok(()) => {}
                Err(DbError::AlreadyExists(_)) => {
                    // A stale key (FS changed the email) must not keep a
                    // key that is someone else's email now.
                    db.clear_email_key(id).await?;
                    tracing::warn!(
                        user_id = id,
                        "this account's email is a look-alike of another account's: merge them"
                    )
                }
                Err(e) => return Err(e),
            }
        }
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn throttle_keys_are_bounded_and_canonical() {
        // A multi-byte character right at the old 255-byte cut panicked.
        let long = format!("{}é@example.com", "a".repeat(240));
        let key = email_key("acct", &long);
        assert_eq!(key.len(), "acct:".len() + 64);
        assert_eq!(
            email_key("acct", " Ann@Example.COM "),
            email_key("acct", "ann@example.com")
        );
        // Fullwidth and composed forms fold to one key.
        assert_eq!(
            email_key("acct", "ＡＮＮ@example.com"),
            email_key("acct", "ann@example.com")
        );
        assert_eq!(
            email_key("acct", "e\u{301}@x.io"),
            email_key("acct", "\u{e9}@x.io")
        );
        assert_ne!(email_key("acct", "a@x.io"), email_key("reg", "a@x.io"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
    }
}
