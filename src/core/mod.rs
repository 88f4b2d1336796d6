//! The auth core: every flow (sign-in, register, change password, verify,
//! rotate, sign out, session and token checks) with no Rocket types. It
//! reads the time from an injected [`clock::Clock`] and fails with its own
//! [`CoreError`]; the HTTP adapters map that to a status in one place.

pub mod account;
pub mod admin;
pub mod clock;
pub mod error;
pub mod password;
pub mod session;
pub mod signin;
pub mod token;
pub mod validate;

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{ConfigError, SecurityConfig};
use crate::db::{Db, DbError, User};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{msg, CoreError, FieldErrors};
use password::Hasher;
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
}

/// The per-address limiter for `per_minute` auth requests a minute, with a
/// burst of the same size.
pub fn ip_limiter(per_minute: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    RateLimiter::keyed(Quota::per_minute(
        NonZeroU32::new(per_minute.max(1)).expect("at least 1"),
    ))
}

/// The throttle key of an account: its email, trimmed and lower-cased.
pub fn account_key(email: &str) -> String {
    let mut key = format!("acct:{}", email.trim().to_lowercase());
    key.truncate(255);
    key
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let signer = TokenSigner::new(config.secret_key.expose(), &config.token_salt);
        let ip_limiter = ip_limiter(config.ip_limit_per_minute);
        Ok(Security {
            config,
            db,
            hasher,
            signer,
            ip_limiter,
            clock,
        })
    }

    /// Now, in whole unix seconds, from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// The active user a token names. A bad, expired or revoked token reads
    /// as nobody (`Ok(None)`); `Err` only when the database cannot answer.
    pub async fn token_user(&self, token: &str) -> Result<Option<User>, CoreError> {
        match self
            .signer
            .verify(token, self.now() as u64, self.config.token_max_age)
        {
            Ok(uid) => Ok(self.db.user_by_uniquifier(&uid).await?.filter(|u| u.active)),
            Err(e) => {
                tracing::debug!(reason = %e, "token refused");
                Ok(None)
            }
        }
    }

    /// Mints a token for a user whose primary authentication was at `paa`.
    pub fn mint_token(&self, uid: &str, paa: f64) -> String {
        self.signer.mint(uid, paa, self.now() as u64)
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
        let uid = new_uniquifier();
        if !self
            .db
            .rotate_uniquifier(user_id, &uid, new_password_hash)
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

    /// Purges what expired: session records past their lifetime and
    /// throttle rows whose window and backoff are over. Run by the
    /// background housekeeping task, never on a request.
    pub async fn housekeeping(&self) -> Result<(u64, u64), DbError> {
        housekeeping(&self.db, self.now(), self.config.account_window).await
    }
}

/// One housekeeping pass at `now`: purges expired session records and
/// throttle rows whose `window` and backoff are over. Returns how many of
/// each went.
pub async fn housekeeping(db: &Db, now: i64, window: i64) -> Result<(u64, u64), DbError> {
    let sessions = db.purge_sessions(now).await?;
    let throttle = db.purge_throttle(now, window).await?;
    Ok((sessions, throttle))
}
