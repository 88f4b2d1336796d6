//! Account recovery by email, Flask-Security's way: forgot password (a
//! reset link), confirm the email (a confirmation link), change the email
//! (a link to the new address), and the security notices. Every mail goes
//! through the outbox: a flow only queues a row, the worker renders and
//! sends it, so a slow or dead mail server never slows or fails a request.
//!
//! A request for a link answers the same whether or not the address has
//! an account, and does the same work either way (a limit check and one
//! insert); the worker finds the account, or drops the row.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::links::{problem_text, LinkKind, LinkProblem};
use super::validate::{canonical_email, normalize_email};
use super::{email_key, msg, password, CoreError, FieldErrors, Security};
use crate::config::ThrottleRule;
use crate::db::{DbError, NewMail, User};
use crate::metrics::Limit;

/// What the outbox sends.
pub mod kind {
    #![allow(missing_docs)]
    /// A reset link, to the address typed on the forgot-password form.
    pub const RESET: &str = "reset";
    /// A confirmation link, to the account's address.
    pub const CONFIRM: &str = "confirm";
    /// A change-of-address link, to the new address.
    pub const CHANGE_EMAIL: &str = "change_email";
    /// A security notice (data: `what`, `at`, `ip`, `user_agent`).
    pub const NOTICE: &str = "notice";
}

/// Security notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The password was changed (by the user or an administrator).
    PasswordChanged,
    /// The password was reset with a link.
    PasswordReset,
    /// The email was changed (sent to the old address).
    EmailChanged,
    /// A sign-in from a browser not seen before.
    NewBrowser,
    /// Two-factor sign-in was turned on.
    TwoFactorOn,
    /// Two-factor sign-in was turned off.
    TwoFactorOff,
    /// A recovery code stood in for the authenticator at a sign-in.
    RecoveryCodeUsed,
    /// A user at the code page asked the people who run the server for
    /// help (sent to `two_factor_rescue_mail`, not to the user).
    TwoFactorRescue,
}

impl Notice {
    /// Its name in the outbox.
    pub fn name(self) -> &'static str {
        match self {
            Notice::PasswordChanged => "password_changed",
            Notice::PasswordReset => "password_reset",
            Notice::EmailChanged => "email_changed",
            Notice::NewBrowser => "new_browser",
            Notice::TwoFactorOn => "two_factor_on",
            Notice::TwoFactorOff => "two_factor_off",
            Notice::RecoveryCodeUsed => "recovery_code_used",
            Notice::TwoFactorRescue => "two_factor_rescue",
        }
    }

    /// From its name in the outbox.
    pub fn from_name(name: &str) -> Option<Notice> {
        [
            Notice::PasswordChanged,
            Notice::PasswordReset,
            Notice::EmailChanged,
            Notice::NewBrowser,
            Notice::TwoFactorOn,
            Notice::TwoFactorOff,
            Notice::RecoveryCodeUsed,
            Notice::TwoFactorRescue,
        ]
        .into_iter()
        .find(|n| n.name() == name)
    }
}

/// Where a request came from, for notices.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The browser, as it names itself.
    pub user_agent: Option<String>,
}

/// A reset link that was good when checked: the one way to
/// [`Security::reset_password`] (the account is only known through it).
#[derive(Debug, Clone)]
pub struct ResetLink(User);

impl ResetLink {
    /// The account the link is for.
    pub fn user(&self) -> &User {
        &self.0
    }
}

/// What following a confirmation link did.
#[derive(Debug, Clone)]
pub enum Confirmed {
    /// The email is confirmed now.
    Now(User),
    /// It already was.
    Already(User),
}

/// The email a request names: FS's messages for a missing or malformed one.
fn requested_email(raw: &str) -> Result<String, CoreError> {
    if raw.trim().is_empty() {
        return Err(CoreError::Validation(FieldErrors::one(
            "email",
            msg::EMAIL_MISSING,
        )));
    }
    normalize_email(raw)
        .ok_or_else(|| CoreError::Validation(FieldErrors::one("email", msg::BAD_EMAIL)))
}

fn link_error(sec: &Security, kind: LinkKind, problem: LinkProblem) -> CoreError {
    let within = match kind {
        LinkKind::Reset => sec.config.reset_password_within,
        LinkKind::Confirm => sec.config.confirm_email_within,
        LinkKind::ChangeEmail => sec.config.change_email_within,
    };
    CoreError::Link {
        kind,
        problem,
        message: problem_text(kind, problem, within),
    }
}

impl Security {
    /// Whether a primary authentication at `paa` (unix seconds) is recent
    /// enough for sensitive changes (`freshness`; 0: always).
    pub fn is_fresh(&self, paa: f64) -> bool {
        self.config.freshness == 0 || (self.clock.now() - paa) <= self.config.freshness as f64
    }

    /// Sign-in needs a confirmed email (FS `CONFIRMABLE` without
    /// `LOGIN_WITHOUT_CONFIRMATION`).
    pub fn confirmation_required(&self) -> bool {
        self.config.confirmable && !self.config.login_without_confirmation
    }

    /// [`CoreError::ConfirmationRequired`] when `user` may not sign in yet.
    pub async fn check_confirmed(&self, user: &User) -> Result<(), CoreError> {
        if self.confirmation_required() && !self.db.is_confirmed(user.id).await? {
            return Err(CoreError::ConfirmationRequired);
        }
        Ok(())
    }

    /// Queues a mail and wakes this instance's worker.
    async fn queue_mail(
        &self,
        kind: &str,
        recipient: &str,
        user_id: Option<i32>,
        data: Value,
    ) -> Result<(), CoreError> {
        let data = data.to_string();
        let mail = NewMail {
            kind,
            recipient,
            user_id,
            data: &data,
        };
        self.db.enqueue_mail(&mail, self.now()).await?;
        self.mail_wakeup.notify_one();
        Ok(())
    }

    /// Queues a link mail unless `recipient` had its share of this kind this
    /// hour: then nothing is sent, and the caller answers the same (no mail
    /// bombing, and no hint either way).
    async fn queue_link_mail(
        &self,
        kind: &str,
        recipient: &str,
        user_id: Option<i32>,
        data: Value,
    ) -> Result<(), CoreError> {
        self.queue_limited(kind, kind, recipient, user_id, data)
            .await
    }

    /// [`Self::queue_link_mail`] counting on the hourly `bucket` of the
    /// recipient.
    async fn queue_limited(
        &self,
        bucket: &str,
        kind: &str,
        recipient: &str,
        user_id: Option<i32>,
        data: Value,
    ) -> Result<(), CoreError> {
        self.queue_limited_by(bucket, kind, recipient, recipient, user_id, data)
            .await
    }

    /// A user's request for help with their second factor, mailed to
    /// `two_factor_rescue_mail` (limited per user, like a notice).
    async fn queue_rescue(&self, user: &User, origin: &Origin) -> Result<(), CoreError> {
        let Some(to) = self.config.two_factor_rescue_mail.clone() else {
            return Ok(());
        };
        let what = Notice::TwoFactorRescue;
        let data = json!({
            "what": what.name(),
            "at": self.now(),
            "user_email": user.email,
            "ip": origin.ip.map(|ip| ip.to_string()),
            "user_agent": origin.user_agent.as_deref().map(|ua| ua.chars().take(300).collect::<String>()),
        });
        let bucket = format!("{}:{}", kind::NOTICE, what.name());
        self.queue_limited_by(&bucket, kind::NOTICE, &user.email, &to, None, data)
            .await
    }

    /// [`Self::queue_limited`], counted on `limited_by`'s bucket.
    async fn queue_limited_by(
        &self,
        bucket: &str,
        kind: &str,
        limited_by: &str,
        recipient: &str,
        user_id: Option<i32>,
        data: Value,
    ) -> Result<(), CoreError> {
        let rule = ThrottleRule {
            limit: self.config.mail_per_address_per_hour,
            window: 3_600,
            base_delay: 3_600,
            max_delay: 3_600,
        };
        // One bucket per kind, so requests of one kind (a confirmation
        // link for a confirmed account, which is never sent) cannot use up
        // another's (the reset the owner needs).
        let state = self
            .db
            .throttle(
                &email_key(&format!("mail:{bucket}"), limited_by),
                self.now(),
                rule,
            )
            .await?;
        if !state.allowed {
            self.metrics.limit_hit(Limit::Mail);
            tracing::warn!(
                event = "mail_limited",
                kind,
                "link mails to this address are over the hourly limit: not sent"
            );
            return Ok(());
        }
        self.queue_mail(kind, recipient, user_id, data).await
    }

    /// A browser's mark for `user` (kept in a cookie of the browser): HMAC of
    /// the account's id under the secret key, so it names the account to
    /// this server only, and cannot be made up.
    pub fn browser_mark(&self, user: &User) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        use secrecy::ExposeSecret;
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(
            self.config.secret_key.expose().expose_secret().as_bytes(),
        )
        .expect("HMAC takes any key length");
        // The uniquifier too: a reset or sign-out everywhere forgets every
        // browser, so an attacker's browser is announced again.
        mac.update(format!("gatehouse-browser:{}:{}", user.id, user.fs_uniquifier).as_bytes());
        super::hex(&mac.finalize().into_bytes()[..12])
    }

    /// A sign-in from a browser whose `marks` (its cookie) do not include
    /// this account's queues the new-browser notice (when it is on).
    /// Returns the marks the browser keeps from now on (at most 8).
    pub async fn note_browser(
        &self,
        user: &User,
        marks: &str,
        origin: &Origin,
    ) -> Result<String, CoreError> {
        let mark = self.browser_mark(user);
        let mut kept: Vec<&str> = marks
            .split('.')
            .filter(|m| m.len() == 24 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        if !kept.contains(&mark.as_str()) {
            self.queue_notice(user, Notice::NewBrowser, origin, json!({}))
                .await?;
            kept.insert(0, &mark);
        }
        kept.truncate(8);
        Ok(kept.join("."))
    }

    /// [`Self::queue_notice`] after a change that already happened (a code
    /// used up, a factor turned on): a failure to queue the notice is
    /// logged, and the change's answer still goes out.
    pub async fn notify(&self, user: &User, what: Notice, origin: &Origin) {
        if let Err(e) = self.queue_notice(user, what, origin, json!({})).await {
            tracing::error!(
                user_id = user.id,
                notice = what.name(),
                error = %e,
                "a security notice could not be queued"
            );
        }
    }

    /// Queues a security notice to `user` (when that notice is on).
    pub async fn queue_notice(
        &self,
        user: &User,
        what: Notice,
        origin: &Origin,
        extra: Value,
    ) -> Result<(), CoreError> {
        let on = match what {
            Notice::PasswordChanged => self.config.send_password_change_notice,
            Notice::PasswordReset => self.config.send_password_reset_notice,
            Notice::EmailChanged => self.config.send_email_change_notice,
            Notice::NewBrowser => self.config.notify_new_browser,
            Notice::TwoFactorOn | Notice::TwoFactorOff | Notice::RecoveryCodeUsed => {
                self.config.send_two_factor_notice
            }
            Notice::TwoFactorRescue => return self.queue_rescue(user, origin).await,
        };
        if !on {
            return Ok(());
        }
        // Not to an address nobody has proven yet (anyone can register
        // someone else's address and trigger notices to it).
        if self.confirmation_required() && !self.db.is_confirmed(user.id).await? {
            return Ok(());
        }
        let mut data = json!({
            "what": what.name(),
            "at": self.now(),
            "ip": origin.ip.map(|ip| ip.to_string()),
            "user_agent": origin.user_agent.as_deref().map(|ua| ua.chars().take(300).collect::<String>()),
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        // Limited per kind of notice, like the links: changing a password in
        // a loop must not flood a mailbox.
        let bucket = format!("{}:{}", kind::NOTICE, what.name());
        self.queue_limited(&bucket, kind::NOTICE, &user.email, Some(user.id), data)
            .await
    }

    /// Forgot password: queues a reset link for `email`. The same answer
    /// (`Ok` with the normalised address) whether or not an account has
    /// it; only a missing or malformed email is an error.
    pub async fn request_reset(&self, email: &str) -> Result<String, CoreError> {
        let email = requested_email(email)?;
        self.queue_link_mail(kind::RESET, &email, None, json!({}))
            .await?;
        tracing::info!(event = "reset_requested", "password reset link requested");
        Ok(email)
    }

    /// Queues a reset link for `user`, without the hourly limit (support,
    /// through the admin CLI).
    pub async fn send_reset_link(&self, user: &User) -> Result<(), CoreError> {
        self.queue_mail(kind::RESET, &user.email, Some(user.id), json!({}))
            .await
    }

    /// Opens a `kind` link: signed, within its lifetime, naming an account
    /// by fs_uniquifier. Returns the payload and the account.
    async fn open_link(
        &self,
        kind: LinkKind,
        token: &str,
    ) -> Result<(Vec<Value>, User), CoreError> {
        let within = match kind {
            LinkKind::Reset => self.config.reset_password_within,
            LinkKind::Confirm => self.config.confirm_email_within,
            LinkKind::ChangeEmail => self.config.change_email_within,
        };
        let items = self
            .links
            .open(
                kind,
                token,
                self.now() as u64,
                within,
                self.config.token_clock_skew,
            )
            .map_err(|p| link_error(self, kind, p))?;
        let invalid = || link_error(self, kind, LinkProblem::Invalid);
        let uid = items.first().and_then(Value::as_str).ok_or_else(invalid)?;
        let user = self.db.user_by_uniquifier(uid).await?.ok_or_else(invalid)?;
        Ok((items, user))
    }

    /// Whether a link's hash element is `hash_data(s)`; `None` (no `s`)
    /// matches a null or missing element only.
    async fn link_hash_matches(
        &self,
        element: Option<&Value>,
        s: Option<&str>,
    ) -> Result<bool, CoreError> {
        Ok(match (s, element) {
            (Some(s), Some(Value::String(hash))) => {
                self.hasher
                    .verify_link_hash(hash.clone(), s.to_owned())
                    .await?
            }
            (None, Some(Value::Null) | None) => true,
            _ => false,
        })
    }

    /// The account a reset link names, while the link is good: signed,
    /// within `reset_password_within`, the account's fs_uniquifier, and its
    /// current password hash (or no password, as when it was minted).
    pub async fn reset_link_user(&self, token: &str) -> Result<ResetLink, CoreError> {
        let (items, user) = self.open_link(LinkKind::Reset, token).await?;
        if !self
            .link_hash_matches(items.get(1), user.password.as_deref())
            .await?
        {
            return Err(link_error(self, LinkKind::Reset, LinkProblem::Invalid));
        }
        Ok(ResetLink(user))
    }

    /// Sets a new password through a reset link checked by
    /// [`Self::reset_link_user`] (the link first, as FS), then FS's password
    /// rules on `password` and `password_confirm`. The
    /// password and fs_uniquifier change in one statement, so every session
    /// and token dies and the link cannot be used again. Clears the
    /// account's sign-in throttle and queues the notice. Returns the user
    /// as stored now.
    pub async fn reset_password(
        &self,
        link: ResetLink,
        new: &str,
        confirm: &str,
        origin: &Origin,
    ) -> Result<User, CoreError> {
        let ResetLink(user) = link;
        let new = password::normalize(new);
        let confirm = password::normalize(confirm);
        let mut errors = FieldErrors::default();
        if let Some(problem) = password::new_password_problem(&new) {
            errors.add("password", problem);
        }
        if confirm.is_empty() {
            errors.add("password_confirm", msg::PASSWORD_MISSING);
        } else if confirm != new && !new.is_empty() {
            errors.add("password_confirm", msg::CONFIRM_MISMATCH);
        }
        errors.into_result()?;
        let hash = self.hasher.hash(&new).await?;
        // Only from the state the link was checked against: of two uses of
        // one link at once, one wins and the other is refused.
        let uid = self
            .rotate_from(
                user.id,
                Some(&user.fs_uniquifier),
                Some(&hash),
                "password_reset",
            )
            .await
            .map_err(|e| match e {
                CoreError::NoSuchUser => link_error(self, LinkKind::Reset, LinkProblem::Invalid),
                e => e,
            })?;
        self.db
            .clear_throttle(&email_key("acct", &user.email))
            .await?;
        let user = User {
            password: Some(hash),
            fs_uniquifier: uid,
            ..user
        };
        self.queue_notice(&user, Notice::PasswordReset, origin, json!({}))
            .await?;
        tracing::info!(
            event = "password_reset",
            user_id = user.id,
            "password reset with a link"
        );
        Ok(user)
    }

    /// Sends (again) a confirmation link to `email`; the same answer
    /// whether or not an account has it, or is confirmed already.
    pub async fn request_confirmation(&self, email: &str) -> Result<String, CoreError> {
        let email = requested_email(email)?;
        self.queue_link_mail(kind::CONFIRM, &email, None, json!({}))
            .await?;
        Ok(email)
    }

    /// Queues the confirmation link of a new account (at registration).
    pub async fn send_welcome_confirmation(&self, user: &User) -> Result<(), CoreError> {
        self.queue_link_mail(
            kind::CONFIRM,
            &user.email,
            Some(user.id),
            json!({"welcome": true}),
        )
        .await
    }

    /// Follows a confirmation link: signed, within `confirm_email_within`,
    /// the account's fs_uniquifier and its current email. Confirms the
    /// email (FS's `confirmed_at`), unless it already was.
    pub async fn confirm_email(&self, token: &str) -> Result<Confirmed, CoreError> {
        let (items, user) = self.open_link(LinkKind::Confirm, token).await?;
        if !self
            .link_hash_matches(items.get(1), Some(&user.email))
            .await?
        {
            return Err(link_error(self, LinkKind::Confirm, LinkProblem::Invalid));
        }
        if self.db.confirm_email(user.id).await? {
            tracing::info!(event = "confirmed", user_id = user.id, "email confirmed");
            Ok(Confirmed::Now(user))
        } else {
            Ok(Confirmed::Already(user))
        }
    }

    /// Marks an account's email confirmed (the admin CLI).
    pub async fn mark_confirmed(&self, user: &User) -> Result<bool, CoreError> {
        Ok(self.db.confirm_email(user.id).await?)
    }

    /// A signed-in user asks to change their email to `new`: FS's rules
    /// (missing, malformed, taken: also their own), then a link to the new
    /// address. Nothing changes until it is followed. Returns the new
    /// address as it will be stored.
    pub async fn request_email_change(&self, user: &User, new: &str) -> Result<String, CoreError> {
        let new = requested_email(new)?;
        if self.find_user(&new).await?.is_some() {
            return Err(CoreError::Validation(FieldErrors::one(
                "email",
                msg::email_taken(&new),
            )));
        }
        self.queue_link_mail(
            kind::CHANGE_EMAIL,
            &new,
            Some(user.id),
            json!({ "new_email": new }),
        )
        .await?;
        tracing::info!(
            event = "email_change_requested",
            user_id = user.id,
            "change of email requested"
        );
        Ok(new)
    }

    /// Follows a change-of-address link: signed, within
    /// `change_email_within`, the account's fs_uniquifier and its current
    /// email, and the new address still free. The email changes (confirmed
    /// now, as FS does); sessions and tokens stay. A notice goes to the old
    /// address. Returns the user as stored now and the old address.
    pub async fn change_email(
        &self,
        token: &str,
        origin: &Origin,
    ) -> Result<(User, String), CoreError> {
        let invalid = || link_error(self, LinkKind::ChangeEmail, LinkProblem::Invalid);
        let (items, user) = self.open_link(LinkKind::ChangeEmail, token).await?;
        let new = items
            .get(2)
            .and_then(Value::as_str)
            .and_then(normalize_email)
            .ok_or_else(invalid)?;
        if !self
            .link_hash_matches(items.get(1), Some(&user.email))
            .await?
        {
            return Err(invalid());
        }
        self.key_emails().await?;
        if self.find_user(&new).await?.is_some() {
            return Err(invalid());
        }
        let old = user.email.clone();
        match self
            .db
            .change_email(user.id, &old, &new, &canonical_email(&new))
            .await
        {
            Ok(true) => {}
            Ok(false) | Err(DbError::AlreadyExists(_)) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        }
        let changed = User {
            email: new.clone(),
            ..user
        };
        // The notice goes to the address the account had.
        let notice_to = User {
            email: old.clone(),
            ..changed.clone()
        };
        self.queue_notice(
            &notice_to,
            Notice::EmailChanged,
            origin,
            json!({ "new_email": new }),
        )
        .await?;
        tracing::info!(
            event = "email_changed",
            user_id = changed.id,
            "email changed"
        );
        Ok((changed, old))
    }
}
