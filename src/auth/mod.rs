//! Authentication: passwords, tokens, sessions, guards, and the shared
//! [`Security`] state that ties them to the configuration and the database.

pub mod client_ip;
pub mod guards;
pub mod password;
pub mod session;
pub mod token;

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::SecurityConfig;
use crate::db::{Db, User};
use crate::error::ApiError;
use password::Hasher;
use token::{TokenError, TokenSigner};

/// Everything a request needs, managed as Rocket state.
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
    /// Throttle calls so far; every 1000th purges expired throttle rows.
    pub throttle_calls: std::sync::atomic::AtomicU64,
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
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` bytes from the OS random source, as lowercase hex.
pub(crate) fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex(&bytes)
}

/// The database form of a session id: its SHA-256, hex.
pub fn session_hash(sid: &str) -> String {
    hex(&Sha256::digest(sid.as_bytes()))
}

/// Why a password sign-in failed. Both read the same to the client until
/// the password was right (WIRE.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown email or wrong password (indistinguishable).
    Invalid,
    /// Right password, inactive account.
    Disabled,
    /// Right password, but the account enrolled in FS two-factor sign-in,
    /// which gatehouse does not serve: refused rather than downgraded.
    TwoFactorRequired,
}

/// Now, in whole unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new fs_uniquifier: 32 lowercase hex characters from 16 CSPRNG bytes.
pub fn new_uniquifier() -> String {
    random_hex::<16>()
}

impl Security {
    /// Counts an auth request from `ip`; 429 past `ip_limit_per_minute`.
    /// Checked before anything else an auth endpoint does.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let result = self.ip_limiter.check_key(&ip);
        // Forget idle addresses now and then, so memory stays bounded.
        if self.ip_limiter.len() > 10_000 {
            self.ip_limiter.retain_recent();
        }
        result.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(
                event = "lockout",
                scope = "ip",
                "client address over the auth rate limit"
            );
            ApiError::TooManyRequests(wait.as_secs().max(1))
        })
    }

    /// Counts a password attempt on an account (shared by every instance
    /// through the database); 429 with the wait when it must back off.
    /// Checked before any hashing.
    pub async fn throttle(&self, key: &str) -> Result<(), ApiError> {
        let now = unix_now() as i64;
        let rule = self.config.account_throttle;
        if self
            .throttle_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 1000
            == 999
        {
            self.db.purge_throttle(now, rule.window).await?;
        }
        let state = self
            .db
            .throttle(key, now, self.config.account_throttle)
            .await?;
        if state.allowed {
            return Ok(());
        }
        tracing::warn!(
            event = "lockout",
            scope = "account",
            attempts = state.attempts,
            "account backing off"
        );
        Err(ApiError::TooManyRequests(
            (state.next_allowed - now).max(1) as u64
        ))
    }

    /// The active user of a signed-in session, if the session is still live.
    pub async fn session_user(
        &self,
        data: &session::SessionData,
    ) -> Result<Option<User>, ApiError> {
        let (Some(uid), Some(sid)) = (data.uid.as_deref(), data.sid.as_deref()) else {
            return Ok(None);
        };
        Ok(self
            .db
            .user_by_session(&session_hash(sid), uid, unix_now() as i64)
            .await?)
    }

    /// Records a new signed-in session on the server.
    pub async fn record_session(
        &self,
        user: &User,
        data: &session::SessionData,
    ) -> Result<(), ApiError> {
        let sid = data.sid.as_deref().expect("a signed-in session has an id");
        let now = data.iat;
        let expires = now + data.max_age(&self.config) as i64;
        self.db
            .create_session(&session_hash(sid), user.id, now, expires)
            .await?;
        Ok(())
    }

    /// Revokes every session and token of a user at once by rotating their
    /// fs_uniquifier (storing `new_password_hash` in the same statement, for
    /// a password change). `reason` goes to the log. Returns the new
    /// fs_uniquifier, or `None` when the user no longer exists.
    pub async fn rotate(
        &self,
        user_id: i32,
        new_password_hash: Option<&str>,
        reason: &'static str,
    ) -> Result<Option<String>, crate::db::DbError> {
        let uid = new_uniquifier();
        if !self
            .db
            .rotate_uniquifier(user_id, &uid, new_password_hash)
            .await?
        {
            return Ok(None);
        }
        tracing::info!(
            event = "rotation",
            reason,
            user_id,
            "fs_uniquifier rotated: every session and token revoked"
        );
        Ok(Some(uid))
    }

    /// Verifies a token now; returns the uid it carries.
    pub fn verify_token(&self, token: &str) -> Result<String, TokenError> {
        self.signer
            .verify(token, unix_now(), self.config.token_max_age)
    }

    /// Mints a token for a user whose primary authentication was at `paa`.
    pub fn mint_token(&self, uid: &str, paa: f64) -> String {
        self.signer.mint(uid, paa, unix_now())
    }

    /// Checks an email and password (sign-in, HTTP Basic). The attempt is
    /// counted on the account first (429 while it must back off, before any
    /// hashing), then exactly one bcrypt run, whether or not the email
    /// exists; none for a password no account can have. A success clears
    /// the account's count. `Err` only for 429, or when the database or the
    /// hashing service cannot answer.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Result<User, LoginFailure>, ApiError> {
        let key = account_key(email);
        self.throttle(&key).await?;
        let normalized = password::normalize(password);
        if password::char_len(&normalized) > password::MAX_LENGTH {
            return Ok(Err(LoginFailure::Invalid));
        }
        let user = self.db.user_by_email(email.trim()).await?;
        let stored = user.as_ref().and_then(|u| u.password.clone());
        if let (Some(u), Some(h)) = (&user, &stored) {
            if password::Scheme::of(h) == password::Scheme::Unsupported {
                tracing::warn!(
                    event = "login",
                    user_id = u.id,
                    "stored password uses an unsupported scheme (plaintext or legacy): refused; reset it"
                );
            }
        }
        let ok = self.hasher.verify(&normalized, stored.as_deref()).await?;
        match user {
            Some(u)
                if ok
                    && u.active
                    && u.tf_primary_method
                        .as_deref()
                        .is_some_and(|m| !m.is_empty()) =>
            {
                Ok(Err(LoginFailure::TwoFactorRequired))
            }
            Some(u) if ok && u.active => {
                self.db.clear_throttle(&key).await?;
                if stored.is_some_and(|h| self.hasher.needs_rehash(&h)) {
                    self.rehash(&u, &normalized).await?;
                }
                Ok(Ok(u))
            }
            Some(_) if ok => Ok(Err(LoginFailure::Disabled)),
            _ => Ok(Err(LoginFailure::Invalid)),
        }
    }

    /// A signed-in user proves their password again (/change, /verify):
    /// throttled like sign-in, one bcrypt run, the count cleared on success.
    pub async fn confirm_password(&self, user: &User, password: &str) -> Result<bool, ApiError> {
        let key = account_key(&user.email);
        self.throttle(&key).await?;
        let normalized = password::normalize(password);
        let right = password::char_len(&normalized) <= password::MAX_LENGTH
            && self
                .hasher
                .verify(&normalized, user.password.as_deref())
                .await?;
        if right {
            self.db.clear_throttle(&key).await?;
        }
        Ok(right)
    }

    /// Replaces a verified legacy hash (argon2, weaker bcrypt) with one of
    /// the configured kind. Same password, so sessions and tokens live on.
    async fn rehash(&self, user: &User, normalized: &str) -> Result<(), ApiError> {
        let hash = self.hasher.hash(normalized).await?;
        self.db.set_password_hash(user.id, &hash).await?;
        tracing::info!(
            event = "rehash",
            user_id = user.id,
            "password rehashed to bcrypt"
        );
        Ok(())
    }
}
