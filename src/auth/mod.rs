//! Authentication: passwords, tokens, sessions, guards, and the shared
//! [`Security`] state that ties them to the configuration and the database.

pub mod guards;
pub mod password;
pub mod session;
pub mod token;

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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new fs_uniquifier: 32 lowercase hex characters from 16 CSPRNG bytes.
pub fn new_uniquifier() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Security {
    /// Verifies a token now; returns the uid it carries.
    pub fn verify_token(&self, token: &str) -> Result<String, TokenError> {
        self.signer
            .verify(token, unix_now(), self.config.token_max_age)
    }

    /// Mints a token for a user whose primary authentication was at `paa`.
    pub fn mint_token(&self, uid: &str, paa: f64) -> String {
        self.signer.mint(uid, paa, unix_now())
    }

    /// Checks an email and password: exactly one bcrypt run, whether or not
    /// the email exists; none at all for a password no account can have.
    /// `Err` only when the database or the hashing service cannot answer.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Result<User, LoginFailure>, ApiError> {
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
                if stored.is_some_and(|h| self.hasher.needs_rehash(&h)) {
                    self.rehash(&u, &normalized).await?;
                }
                Ok(Ok(u))
            }
            Some(_) if ok => Ok(Err(LoginFailure::Disabled)),
            _ => Ok(Err(LoginFailure::Invalid)),
        }
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
