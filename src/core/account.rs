//! Accounts: create one (register, and the admin CLI), change its password
//! (the user, and the admin CLI), sign out everywhere. The routes and the
//! CLI share these flows, so they share their rules.

use std::net::IpAddr;

use super::validate::normalize_email;
use super::{msg, password, CoreError, FieldErrors, Security};
use crate::db::{DbError, Role, User};

/// What a new account is made of.
pub struct NewAccount<'a> {
    /// The email as typed.
    pub email: &'a str,
    /// The password as typed.
    pub password: &'a str,
    /// The confirmation as typed (`None` where nobody typed one: the CLI
    /// prompts twice itself).
    pub confirm: Option<&'a str>,
    /// Roles to give the account, in the same transaction.
    pub roles: &'a [Role],
}

/// Checks a new password by FS's rules; returns it NFKD-normalised.
pub fn new_password(raw: &str, field: &str) -> Result<String, CoreError> {
    let normalized = password::normalize(raw);
    match password::new_password_problem(&normalized) {
        Some(problem) => Err(CoreError::Validation(FieldErrors::one(field, problem))),
        None => Ok(normalized),
    }
}

/// A new account's input once it passed the rules: the normalised email
/// and password.
struct Checked {
    email: String,
    password: String,
}

/// The email and password rules of a new account (FS's messages).
fn check_new_account(new: &NewAccount<'_>) -> Result<Checked, CoreError> {
    let mut errors = FieldErrors::default();
    let email = if new.email.trim().is_empty() {
        errors.add("email", msg::EMAIL_MISSING);
        None
    } else {
        let e = normalize_email(new.email);
        if e.is_none() {
            errors.add("email", msg::BAD_EMAIL);
        }
        e
    };
    let password = password::normalize(new.password);
    if let Some(problem) = password::new_password_problem(&password) {
        errors.add("password", problem);
    }
    match new.confirm {
        Some("") => errors.add("password_confirm", msg::PASSWORD_MISSING),
        Some(confirm) if password::normalize(confirm) != password => {
            errors.add("password_confirm", msg::CONFIRM_MISMATCH)
        }
        _ => {}
    }
    match email {
        Some(email) if errors.is_empty() => Ok(Checked { email, password }),
        _ => Err(CoreError::Validation(errors)),
    }
}

impl Security {
    /// Creates an active account (the admin CLI): the email and password
    /// rules, then one hash, then the user and its roles in one
    /// transaction. A taken email (in any letter case, also when two
    /// requests race) is a validation error on `email`.
    pub async fn create_account(&self, new: NewAccount<'_>) -> Result<User, CoreError> {
        let checked = check_new_account(&new)?;
        self.store_account(checked, new.roles).await
    }

    async fn store_account(&self, new: Checked, roles: &[Role]) -> Result<User, CoreError> {
        let email = new.email;
        let taken = || CoreError::Validation(FieldErrors::one("email", msg::email_taken(&email)));
        // Rows Flask-Security wrote since the last pass get their keys
        // first, so a look-alike of one of them is refused too.
        self.key_emails().await?;
        // Cheap check first so an obvious duplicate costs no hash; the unique
        // index still decides races.
        if self.find_user(&email).await?.is_some() {
            return Err(taken());
        }
        let hash = self.hasher.hash(&new.password).await?;
        let mut role_ids: Vec<i32> = roles.iter().map(|r| r.id).collect();
        role_ids.sort_unstable();
        role_ids.dedup();
        let user = match self
            .db
            .create_user(&email, Some(&hash), &super::new_ids(&email), &role_ids)
            .await
        {
            Err(DbError::AlreadyExists(_)) => return Err(taken()),
            other => other?,
        };
        tracing::info!(
            event = "user_created",
            user_id = user.id,
            roles = role_ids.len(),
            "account created"
        );
        Ok(user)
    }

    /// The register flow: the rules, the registration throttle (per
    /// email, before any hashing), a new account, signed in at once
    /// (tracked). The caller starts the session.
    pub async fn register(
        &self,
        new: NewAccount<'_>,
        ip: Option<IpAddr>,
    ) -> Result<User, CoreError> {
        let checked = check_new_account(&new)?;
        self.throttle(&super::email_key("reg", &checked.email))
            .await?;
        let user = self.store_account(checked, new.roles).await?;
        // Tracked as a sign-in only when it is one (not while the email
        // waits for confirmation).
        if !self.confirmation_required() {
            self.record_login(&user, ip).await?;
        }
        tracing::info!(
            event = "register",
            outcome = "ok",
            user_id = user.id,
            "registered and signed in"
        );
        Ok(user)
    }

    /// Sets a new password and rotates fs_uniquifier in one statement, so
    /// every session and token of the user dies. With `current`, the user
    /// proves the old password first (throttled; a missing one is a wrong
    /// one, as in FS) and the new one must differ; the admin CLI passes
    /// `None`. With `confirm`, it must be given and match. Errors sit on
    /// FS's fields.
    /// Returns the user as stored now.
    pub async fn change_password(
        &self,
        user: &User,
        current: Option<&str>,
        new: &str,
        confirm: Option<&str>,
        reason: &'static str,
        origin: &super::recovery::Origin,
    ) -> Result<User, CoreError> {
        let new = password::normalize(new);
        let mut errors = FieldErrors::default();
        if let Some(problem) = password::new_password_problem(&new) {
            errors.add("new_password", problem);
        }
        match confirm.map(password::normalize) {
            Some(c) if c.is_empty() => errors.add("new_password_confirm", msg::PASSWORD_MISSING),
            Some(c) if c != new => errors.add("new_password_confirm", msg::CONFIRM_MISMATCH),
            _ => {}
        }
        errors.into_result()?;
        if let Some(current) = current {
            let current = password::normalize(current);
            self.confirm_password(user, &current).await?;
            if new == current {
                return Err(CoreError::Validation(FieldErrors::one(
                    "password",
                    msg::SAME_PASSWORD,
                )));
            }
        }
        let hash = self.hasher.hash(&new).await?;
        let uid = self.rotate(user.id, Some(&hash), reason).await?;
        let user = User {
            password: Some(hash),
            fs_uniquifier: uid,
            ..user.clone()
        };
        self.queue_notice(
            &user,
            super::recovery::Notice::PasswordChanged,
            origin,
            serde_json::json!({ "by_admin": current.is_none() }),
        )
        .await?;
        Ok(user)
    }

    /// Sign out everywhere: every session and token of the user dies.
    pub async fn sign_out_everywhere(&self, user: &User) -> Result<(), CoreError> {
        self.rotate(user.id, None, "logout_everywhere").await?;
        Ok(())
    }
}
