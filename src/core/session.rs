//! Browser sessions as data: what the session cookie holds, its lifetimes,
//! its CSRF secret, and its server-side record. Reading and writing the
//! cookie is the HTTP adapter's job.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{hex, msg, CoreError, Security};
use crate::config::SecurityConfig;
use crate::db::User;

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    /// fs_uniquifier of the signed-in user; `None` for an anonymous session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Id of the server-side session record (signed-in sessions only):
    /// deleting the record ends this session, wherever the cookie was copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// CSRF secret, also handed to the page as the CSRF token.
    pub csrf: String,
    /// Primary authentication time (unix seconds, fractional), as FS `fs_paa`.
    #[serde(default)]
    pub paa: f64,
    /// When this cookie was issued (unix seconds).
    pub iat: i64,
    /// "Remember me": persistent, with the longer lifetime.
    #[serde(default)]
    pub rem: bool,
    /// The device this session belongs to (signed-in sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// A two-factor sign-in waiting for its code (an anonymous session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf: Option<TfPending>,
}

/// The password was right; the code is still to come.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TfPending {
    /// fs_uniquifier of the account.
    pub uid: String,
    /// When the password was checked (unix seconds).
    pub at: i64,
    /// "Remember me" asked at the password step.
    pub rem: bool,
    /// The account must enrol an authenticator before it signs in (a role
    /// requires two-factor sign-in).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrol: bool,
    /// The enrolment under way (its state token), for FS clients that
    /// finish it at `/tf-validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The database form of a session id: its SHA-256, hex.
pub fn session_hash(sid: &str) -> String {
    hex(&Sha256::digest(sid.as_bytes()))
}

impl SessionData {
    /// The server-side lifetime of this session, seconds.
    pub fn max_age(&self, cfg: &SecurityConfig) -> u64 {
        if self.rem {
            cfg.remember_max_age
        } else {
            cfg.session_max_age
        }
    }

    /// Whether the server-side lifetime still holds at `now`.
    pub fn is_fresh(&self, cfg: &SecurityConfig, now: i64) -> bool {
        // A small allowance for clock steps between instances.
        self.iat <= now + 60 && now - self.iat < self.max_age(cfg) as i64
    }

    /// Checks a presented CSRF token against this session's secret, in
    /// constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Whether a user is signed in with this session.
    pub fn signed_in(&self) -> bool {
        self.uid.is_some()
    }
}

/// Checks a presented CSRF token against the session. Errors carry the exact
/// FS messages.
pub fn check_csrf(
    session: Option<&SessionData>,
    presented: Option<&str>,
) -> Result<(), &'static str> {
    match (presented.filter(|p| !p.is_empty()), session) {
        (None, _) => Err(msg::CSRF_MISSING),
        (Some(p), Some(s)) if s.csrf_matches(p) => Ok(()),
        (Some(_), _) => Err(msg::CSRF_INVALID),
    }
}

impl Security {
    /// A new anonymous session: only a CSRF secret, for the login form.
    pub fn anonymous_session(&self) -> SessionData {
        SessionData {
            uid: None,
            sid: None,
            csrf: random_token(),
            paa: 0.0,
            iat: self.now(),
            rem: false,
            tf: None,
            dev: None,
        }
    }

    /// Starts a brand-new signed-in session for `user` (fresh id and CSRF
    /// secret, primary authentication now) and records it on the server.
    ///
    /// It belongs to `device` when given (a re-authentication in the same
    /// browser), else to a new device for this sign-in from `origin`.
    pub async fn start_session(
        &self,
        user: &User,
        remember: bool,
        device: Option<&str>,
        origin: &super::recovery::Origin,
    ) -> Result<SessionData, CoreError> {
        let now = self.now();
        let paa = self.clock.now();
        let max_age = if remember {
            self.config.remember_max_age
        } else {
            self.config.session_max_age
        };
        let expires = now + max_age as i64;
        let device = match device {
            Some(d) if self.extend_device(d, expires).await? => d.to_owned(),
            _ => self.new_device(user, origin, paa, expires).await?,
        };
        let data = SessionData {
            uid: Some(user.fs_uniquifier.clone()),
            sid: Some(random_token()),
            csrf: random_token(),
            paa,
            iat: now,
            rem: remember,
            tf: None,
            dev: Some(device),
        };
        let sid = data.sid.as_deref().unwrap_or_default();
        self.db
            .create_session(
                &session_hash(sid),
                user.id,
                data.iat,
                expires,
                data.dev.as_deref().unwrap_or_default(),
            )
            .await?;
        Ok(data)
    }

    /// The active user of a session cookie, if the session is still live:
    /// within its lifetime, its record present, the uniquifier current.
    pub async fn session_user(&self, data: &SessionData) -> Result<Option<User>, CoreError> {
        let now = self.now();
        if !data.is_fresh(&self.config, now) {
            return Ok(None);
        }
        let (Some(uid), Some(sid)) = (data.uid.as_deref(), data.sid.as_deref()) else {
            return Ok(None);
        };
        let idle = self.config.session_idle_timeout as i64;
        let idle_since = if idle > 0 { now - idle } else { 0 };
        let hash = session_hash(sid);
        let Some((user, last_seen)) = self.db.user_by_session(&hash, uid, now, idle_since).await?
        else {
            return Ok(None);
        };
        // Record the use at most once a minute (or a tenth of the limit):
        // enough for the limit and the device list's "last seen", no write
        // on every request.
        let every = if idle > 0 {
            (idle / 10).clamp(1, 60)
        } else {
            60
        };
        if now - last_seen >= every {
            self.db.touch_session(&hash, now).await?;
        }
        Ok(Some(user))
    }

    /// Ends one session on the server: a copy of its cookie cannot sign
    /// anyone in again.
    pub async fn end_session(&self, data: &SessionData) -> Result<(), CoreError> {
        if let Some(sid) = data.sid.as_deref() {
            self.db.delete_session(&session_hash(sid)).await?;
        }
        Ok(())
    }

    /// The sign-out flow: this session ends (the others live on).
    pub async fn sign_out(&self, data: &SessionData) -> Result<(), CoreError> {
        self.end_session(data).await?;
        if data.signed_in() {
            tracing::info!(event = "logout", "session ended");
        }
        Ok(())
    }
}
