//! Proving who you are with a password: the per-address limit, the
//! per-account throttle, the password check with its constant work, the
//! rehash of legacy hashes, and sign-in tracking.

use std::net::IpAddr;

use governor::clock::{Clock as _, DefaultClock};

use super::{address_key, email_key, password, CoreError, Security};
use crate::core::validate::MAX_EMAIL_LEN;
use crate::db::User;
use crate::metrics::{Limit, SignIn};

impl Security {
    /// Counts an auth request from `ip`; [`CoreError::Throttled`] past
    /// `ip_limit_per_minute`. Checked before anything else an auth flow does.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), CoreError> {
        let Some(ip) = ip else { return Ok(()) };
        let result = self.ip_limiter.check_key(&address_key(ip));
        // Forget idle addresses now and then, so memory stays bounded.
        if self.ip_limiter.len() > 10_000 {
            self.ip_limiter.retain_recent();
        }
        result.map_err(|not_until| {
            self.metrics.limit_hit(Limit::Ip);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(
                event = "lockout",
                scope = "ip",
                "client address over the auth rate limit"
            );
            CoreError::Throttled(wait.as_secs().max(1))
        })
    }

    /// Counts a password attempt on an account (shared by every instance
    /// through the database); [`CoreError::Throttled`] with the wait when it
    /// must back off. Checked before any hashing.
    pub async fn throttle(&self, key: &str) -> Result<(), CoreError> {
        let now = self.now();
        let state = self
            .db
            .throttle(key, now, self.config.account_throttle())
            .await?;
        if state.allowed {
            return Ok(());
        }
        self.metrics.limit_hit(Limit::Account);
        tracing::warn!(
            event = "lockout",
            scope = "account",
            attempts = state.attempts,
            "account backing off"
        );
        Err(CoreError::Throttled(
            (state.next_allowed - now).max(1) as u64
        ))
    }

    /// Checks an email and password (sign-in, HTTP Basic). The attempt is
    /// counted on the account first (throttled before any hashing), then
    /// exactly one bcrypt run, whether or not the email exists; none for a
    /// password or email no account can have. A success clears the
    /// account's count and upgrades a legacy hash.
    pub async fn check_password(&self, email: &str, password: &str) -> Result<User, CoreError> {
        if email.len() > MAX_EMAIL_LEN || email.chars().any(char::is_control) {
            return Err(CoreError::WrongCredentials);
        }
        // The account first, so its attempts count on one key whatever
        // spelling of the email found it; an unknown email has its own key.
        let user = self.find_user(email).await?;
        let key = email_key("acct", user.as_ref().map_or(email, |u| u.email.as_str()));
        self.throttle(&key).await?;
        let normalized = password::normalize(password);
        if password::char_len(&normalized) > password::MAX_LENGTH {
            return Err(CoreError::WrongCredentials);
        }
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
            Some(u) if ok && !u.active => Err(CoreError::Disabled),
            Some(u)
                if ok
                    && u.tf_primary_method
                        .as_deref()
                        .is_some_and(|m| !m.is_empty()) =>
            {
                // Unconfirmed accounts stop here, before any second step.
                self.check_confirmed(&u).await?;
                // The authenticator goes on with a code; other methods (SMS,
                // email codes) are refused rather than downgraded.
                if super::twofactor::supported(u.tf_primary_method.as_deref()) {
                    Err(CoreError::CodeRequired {
                        uid: u.fs_uniquifier.clone(),
                    })
                } else {
                    Err(CoreError::TwoFactorRequired)
                }
            }
            Some(u) if ok && self.must_enrol(&u).await? => {
                self.check_confirmed(&u).await?;
                Err(CoreError::EnrolRequired {
                    uid: u.fs_uniquifier.clone(),
                })
            }
            Some(u) if ok => {
                self.db.clear_throttle(&key).await?;
                if stored.is_some_and(|h| self.hasher.needs_rehash(&h)) {
                    self.rehash(&u, &normalized).await?;
                }
                Ok(u)
            }
            _ => Err(CoreError::WrongCredentials),
        }
    }

    /// The sign-in flow: the password check, then tracking (last/current
    /// login time and address, count) in one statement. The caller starts
    /// the session or mints the token.
    ///
    /// `remembered` is the browser's `tf_validity` cookie: when it names
    /// this account (and two-factor sign-in allows remembering), the right
    /// password is enough.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
        remembered: Option<&str>,
    ) -> Result<User, CoreError> {
        let mut result = self.check_password(email, password).await;
        if let (Err(CoreError::CodeRequired { uid }), Some(cookie)) = (&result, remembered) {
            if self.browser_remembered(cookie, uid) {
                if let Some(user) = self.db.user_by_uniquifier(uid).await? {
                    self.db
                        .clear_throttle(&email_key("acct", &user.email))
                        .await?;
                    tracing::info!(
                        event = "tf_remembered",
                        user_id = user.id,
                        "second factor skipped: a remembered browser"
                    );
                    result = Ok(user);
                }
            }
        }
        if let Ok(user) = &result {
            if let Err(e) = self.check_confirmed(user).await {
                result = Err(e);
            }
        }
        self.metrics.sign_in(match &result {
            Ok(_) => SignIn::Ok,
            Err(CoreError::WrongCredentials) => SignIn::InvalidCredentials,
            Err(CoreError::Disabled) => SignIn::Disabled,
            Err(
                CoreError::TwoFactorRequired
                | CoreError::CodeRequired { .. }
                | CoreError::EnrolRequired { .. },
            ) => SignIn::TwoFactorRequired,
            Err(CoreError::Throttled(_)) => SignIn::Throttled,
            Err(CoreError::Busy) => SignIn::Busy,
            Err(CoreError::Unavailable(_)) => SignIn::Unavailable,
            Err(CoreError::ConfirmationRequired) => SignIn::Unconfirmed,
            Err(_) => SignIn::Error,
        });
        match &result {
            Ok(user) => {
                self.record_login(user, ip).await?;
                tracing::info!(
                    event = "login",
                    outcome = "ok",
                    user_id = user.id,
                    "signed in"
                );
            }
            Err(e) => {
                let reason = match e {
                    CoreError::WrongCredentials => "invalid_credentials",
                    CoreError::Disabled => "disabled",
                    CoreError::TwoFactorRequired => "two_factor_required",
                    CoreError::CodeRequired { .. } => "code_required",
                    CoreError::EnrolRequired { .. } => "enrol_required",
                    CoreError::ConfirmationRequired => "unconfirmed",
                    _ => return result,
                };
                tracing::info!(
                    event = "login",
                    outcome = "failed",
                    reason,
                    "sign-in refused"
                );
            }
        }
        result
    }

    /// Records a successful sign-in (FS trackable).
    pub async fn record_login(&self, user: &User, ip: Option<IpAddr>) -> Result<(), CoreError> {
        let ip = ip.map(|ip| ip.to_string());
        Ok(self.db.record_login(user.id, ip.as_deref()).await?)
    }

    /// A signed-in user proves their password again (/change, /verify):
    /// throttled like sign-in, one bcrypt run, the count cleared on success.
    /// [`CoreError::WrongPassword`] when it does not match.
    pub async fn confirm_password(&self, user: &User, password: &str) -> Result<(), CoreError> {
        let key = email_key("acct", &user.email);
        self.throttle(&key).await?;
        let normalized = password::normalize(password);
        let right = password::char_len(&normalized) <= password::MAX_LENGTH
            && self
                .hasher
                .verify(&normalized, user.password.as_deref())
                .await?;
        if !right {
            return Err(CoreError::WrongPassword);
        }
        self.db.clear_throttle(&key).await?;
        Ok(())
    }

    /// The re-authentication flow (FS /verify): the password again, which
    /// refreshes the primary authentication time of the new session the
    /// caller then starts.
    pub async fn verify(&self, user: &User, password: &str) -> Result<(), CoreError> {
        let normalized = password::normalize(password);
        if normalized.is_empty() {
            return Err(CoreError::Validation(super::FieldErrors::one(
                "password",
                super::msg::PASSWORD_MISSING,
            )));
        }
        let outcome = self.confirm_password(user, &normalized).await;
        let verdict = match &outcome {
            Ok(()) => "ok",
            Err(CoreError::WrongPassword) => "failed",
            Err(_) => return outcome,
        };
        tracing::info!(
            event = "verify",
            outcome = verdict,
            user_id = user.id,
            "re-authentication"
        );
        outcome
    }

    /// Times a verification of each kind of hash the accounts have, so
    /// that refusals are padded to the slowest from the first one on.
    pub async fn calibrate(&self) -> Result<(), CoreError> {
        let samples = self.db.password_samples().await?;
        self.hasher.calibrate(&samples).await?;
        Ok(())
    }

    /// Replaces a verified legacy hash (argon2, weaker bcrypt) with one of
    /// the configured kind. Same password, so sessions and tokens live on.
    async fn rehash(&self, user: &User, normalized: &str) -> Result<(), CoreError> {
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
