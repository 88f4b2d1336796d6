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
        let ok = self
            .hasher
            .verify(
                &normalized,
                user.as_ref().and_then(|u| u.password.as_deref()),
            )
            .await?;
        match user {
            Some(u) if ok && u.active => Ok(Ok(u)),
            Some(_) if ok => Ok(Err(LoginFailure::Disabled)),
            _ => Ok(Err(LoginFailure::Invalid)),
        }
    }
}
