//! Account administration, as `flask users …` / `flask roles …` do it. The
//! binary's CLI is a thin shell over these; they run the same flows as the
//! routes (create an account, change a password, rotate) and return a
//! one-line reason on failure.

use super::account::NewAccount;
use super::{CoreError, Security};
use crate::db::{Role, User, UserSummary};

/// Why an admin command failed: a one-line, operator-readable reason.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No user has this email.
    #[error("no user with email {0}")]
    UnknownUser(String),
    /// No role has this name.
    #[error("no role named {0:?}")]
    UnknownRole(String),
    /// The role name is taken.
    #[error("a role named {0:?} already exists")]
    RoleExists(String),
    /// The input breaks a rule (email, password, name), or the email is taken.
    #[error("{0}")]
    Invalid(String),
    /// The database or the hasher could not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::db::DbError> for AdminError {
    fn from(e: crate::db::DbError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

impl From<CoreError> for AdminError {
    fn from(e: CoreError) -> Self {
        match e.field_errors() {
            Some(f) => AdminError::Invalid(f.messages().join(" ")),
            None => AdminError::Unavailable(e.to_string()),
        }
    }
}

/// Checks a new password by the register rules and returns it normalised.
pub fn check_password(raw: &str) -> Result<String, AdminError> {
    Ok(super::account::new_password(raw, "password")?)
}

async fn user(sec: &Security, email: &str) -> Result<User, AdminError> {
    sec.find_user(email)
        .await?
        .ok_or_else(|| AdminError::UnknownUser(email.trim().to_owned()))
}

async fn role(sec: &Security, name: &str) -> Result<Role, AdminError> {
    sec.db
        .role_by_name(name)
        .await?
        .ok_or_else(|| AdminError::UnknownRole(name.to_owned()))
}

/// Creates an active user with a password and roles (which must exist):
/// the register flow, with the roles in the same transaction.
pub async fn create_user(
    sec: &Security,
    email: &str,
    raw_password: &str,
    roles: &[String],
) -> Result<User, AdminError> {
    let mut found = Vec::new();
    for name in roles {
        found.push(role(sec, name).await?);
    }
    let user = sec
        .create_account(NewAccount {
            email,
            password: raw_password,
            confirm: None,
            roles: &found,
        })
        .await?;
    // An administrator vouches for the address.
    sec.mark_confirmed(&user).await?;
    Ok(user)
}

/// Activates or deactivates a user. Deactivation blocks every session and
/// token at once, without rotating fs_uniquifier.
pub async fn set_active(sec: &Security, email: &str, active: bool) -> Result<User, AdminError> {
    let u = user(sec, email).await?;
    sec.db.set_active(u.id, active).await?;
    tracing::info!(
        event = "user_active",
        user_id = u.id,
        active,
        "user activation changed"
    );
    Ok(User { active, ..u })
}

/// Rotates fs_uniquifier: every session and token of the user dies.
pub async fn reset_access(sec: &Security, email: &str) -> Result<User, AdminError> {
    let u = user(sec, email).await?;
    let uid = sec
        .rotate(u.id, None, "reset_access")
        .await
        .map_err(|e| match e {
            CoreError::NoSuchUser => AdminError::UnknownUser(email.trim().to_owned()),
            e => e.into(),
        })?;
    Ok(User {
        fs_uniquifier: uid,
        ..u
    })
}

/// Sets a new password: the user's own change flow without the old
/// password; it rotates fs_uniquifier.
pub async fn change_password(
    sec: &Security,
    email: &str,
    raw_password: &str,
) -> Result<User, AdminError> {
    check_password(raw_password)?;
    let u = user(sec, email).await?;
    sec.change_password(
        &u,
        None,
        raw_password,
        None,
        "admin_password_change",
        &crate::core::recovery::Origin::default(),
    )
    .await
    .map_err(|e| match e {
        CoreError::NoSuchUser => AdminError::UnknownUser(email.trim().to_owned()),
        e => e.into(),
    })
}

/// Marks a user's email confirmed; `Ok(false)` when it already was.
pub async fn confirm_user(sec: &Security, email: &str) -> Result<(User, bool), AdminError> {
    let u = user(sec, email).await?;
    let now = sec.mark_confirmed(&u).await?;
    Ok((u, now))
}

/// Queues a reset link to a user (support: "I cannot sign in"), without
/// the hourly limit of the forgot-password form. A running server sends it.
pub async fn send_reset(sec: &Security, email: &str) -> Result<User, AdminError> {
    let u = user(sec, email).await?;
    sec.send_reset_link(&u).await?;
    Ok(u)
}

/// Takes a user's second factor away (support: a lost phone, after the
/// operator made sure who is asking): no authenticator, no recovery codes,
/// and signed out everywhere (fs_uniquifier rotated), as FS's
/// `reset_user_access` does for two-factor. The password stays; the user
/// is told by mail. `Ok(false)` when they had no second factor (they are
/// signed out everywhere all the same).
pub async fn reset_two_factor(sec: &Security, email: &str) -> Result<(User, bool), AdminError> {
    let u = user(sec, email).await?;
    let had = sec.reset_two_factor(&u).await?;
    Ok((u, had))
}

/// Makes a personal access token for a user (scripts, CI): see
/// [`Security::create_pat`].
pub async fn create_token(
    sec: &Security,
    email: &str,
    name: &str,
    days: u64,
    scope: Option<&[String]>,
) -> Result<(crate::core::pat::PatView, String), AdminError> {
    let u = user(sec, email).await?;
    Ok(sec.create_pat(&u, name, days, scope).await?)
}

/// A user's personal access tokens.
pub async fn list_tokens(
    sec: &Security,
    email: &str,
) -> Result<Vec<crate::core::pat::PatView>, AdminError> {
    let u = user(sec, email).await?;
    Ok(sec.pats(&u).await?)
}

/// Revokes a personal access token by id.
pub async fn revoke_token(sec: &Security, id: &str) -> Result<(), AdminError> {
    if sec.revoke_pat(None, id).await? {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!("no live token with id {id:?}")))
    }
}

/// Every user with their roles.
pub async fn list_users(sec: &Security) -> Result<Vec<UserSummary>, AdminError> {
    Ok(sec.db.list_users().await?)
}

/// Creates a role; permissions are stored comma-separated, as FS does.
pub async fn create_role(
    sec: &Security,
    name: &str,
    permissions: &[String],
    description: Option<&str>,
) -> Result<Role, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 80 {
        return Err(AdminError::Invalid(
            "a role name has 1 to 80 characters".into(),
        ));
    }
    if permissions
        .iter()
        .any(|p| p.contains(',') || p.trim().is_empty())
    {
        return Err(AdminError::Invalid(
            "permission names are non-empty and have no commas".into(),
        ));
    }
    let perms = (!permissions.is_empty()).then(|| {
        permissions
            .iter()
            .map(|p| p.trim())
            .collect::<Vec<_>>()
            .join(",")
    });
    match sec
        .db
        .create_role(name, description, perms.as_deref())
        .await
    {
        Err(crate::db::DbError::AlreadyExists(_)) => Err(AdminError::RoleExists(name.to_owned())),
        other => Ok(other?),
    }
}

/// Gives a user a role; `Ok(false)` when they already had it.
pub async fn add_role(sec: &Security, email: &str, role_name: &str) -> Result<bool, AdminError> {
    let u = user(sec, email).await?;
    let r = role(sec, role_name).await?;
    Ok(sec.db.add_role(u.id, r.id).await?)
}

/// Takes a role from a user; `Ok(false)` when they did not have it.
pub async fn remove_role(sec: &Security, email: &str, role_name: &str) -> Result<bool, AdminError> {
    let u = user(sec, email).await?;
    let r = role(sec, role_name).await?;
    Ok(sec.db.remove_role(u.id, r.id).await?)
}

/// Every role.
pub async fn list_roles(sec: &Security) -> Result<Vec<Role>, AdminError> {
    Ok(sec.db.list_roles().await?)
}
