//! Personal access tokens: named tokens for scripts, with an expiry and,
//! optionally, a subset of the user's roles as their scope. Shown once at
//! creation (`ghpat_<id>_<secret>`), stored as the SHA-256 of the secret,
//! accepted like auth tokens (the token header, `Authorization: Bearer`),
//! refused from the next request after expiry or revocation.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{hex, CoreError, FieldErrors, Security};
use crate::db::User;

const PREFIX: &str = "ghpat_";

/// A personal access token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PatView {
    /// Its id (for revoking it).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The roles it is limited to; none: all of the user's.
    pub scope: Option<Vec<String>>,
    /// Unix seconds it was made.
    pub created_at: i64,
    /// Unix seconds it was last used.
    pub last_used_at: Option<i64>,
    /// Unix seconds it stops working.
    pub expires_at: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Who a personal access token authenticates, and its scope.
#[derive(Debug, Clone)]
pub struct PatAuth {
    /// The owner.
    pub user: User,
    /// Unix seconds it was made.
    pub created_at: i64,
    /// Unix seconds it stops working.
    pub expires_at: i64,
    /// The roles it may use, when limited.
    pub scope: Option<Vec<String>>,
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn split_scope(scope: Option<&str>) -> Option<Vec<String>> {
    scope.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Whether `token` looks like a personal access token (not an FS token).
pub fn is_pat(token: &str) -> bool {
    token.starts_with(PREFIX)
}

impl Security {
    /// Makes a personal access token for `user`: `name` (1 to 100
    /// characters), good for `days` (1 to `personal_token_max_days`),
    /// limited to `scope` (roles the user has) when given. Returns it and
    /// the token, which is shown this once.
    pub async fn create_pat(
        &self,
        user: &User,
        name: &str,
        days: u64,
        scope: Option<&[String]>,
    ) -> Result<(PatView, String), CoreError> {
        let name = name.trim();
        let mut errors = FieldErrors::default();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.add("name", "Give the token a name of 1 to 100 characters.");
        }
        let max = self.config.personal_token_max_days;
        if days == 0 || days > max {
            errors.add("expires_in_days", format!("A token lasts 1 to {max} days."));
        }
        let mut scope_list: Option<Vec<String>> = None;
        if let Some(wanted) = scope {
            let have = self.db.user_roles(user.id).await?;
            let mut list = Vec::new();
            for r in wanted {
                let r = r.trim();
                if r.is_empty() {
                    continue;
                }
                if !have.iter().any(|h| h.name == r) {
                    errors.add("roles", format!("You do not have the role {r:?}."));
                } else if !list.iter().any(|l: &String| l == r) {
                    list.push(r.to_owned());
                }
            }
            scope_list = Some(list);
        }
        errors.into_result()?;
        let id = super::random_hex::<8>();
        let secret = super::random_hex::<32>();
        let now = self.now();
        let expires_at = now + (days * 86_400) as i64;
        let scope_text = scope_list.as_ref().map(|l| l.join(","));
        self.db
            .create_pat(
                &id,
                user.id,
                name,
                &digest(&secret),
                scope_text.as_deref(),
                now,
                expires_at,
            )
            .await?;
        tracing::info!(
            event = "pat_created",
            user_id = user.id,
            "personal access token made"
        );
        Ok((
            PatView {
                id: id.clone(),
                name: name.to_owned(),
                scope: scope_list,
                created_at: now,
                last_used_at: None,
                expires_at,
                revoked: false,
            },
            format!("{PREFIX}{id}_{secret}"),
        ))
    }

    /// The user a personal access token authenticates: its secret right,
    /// not expired, not revoked, its owner active. One lookup; the last use
    /// is recorded at most once a minute.
    pub async fn pat_user(&self, token: &str) -> Result<Option<PatAuth>, CoreError> {
        let Some((id, secret)) = token.strip_prefix(PREFIX).and_then(|t| t.split_once('_')) else {
            return Ok(None);
        };
        if id.len() != 16 || secret.len() != 64 {
            return Ok(None);
        }
        let Some(found) = self.db.pat(id).await? else {
            return Ok(None);
        };
        let now = self.now();
        let right: bool = digest(secret)
            .as_bytes()
            .ct_eq(found.secret_hash.as_bytes())
            .into();
        if !right || found.revoked_at.is_some() || found.expires_at <= now {
            return Ok(None);
        }
        if found.last_used_at.is_none_or(|t| now - t >= 60) {
            self.db.touch_pat(id, now).await?;
        }
        Ok(Some(PatAuth {
            user: found.user,
            created_at: found.created_at,
            expires_at: found.expires_at,
            scope: split_scope(found.scope.as_deref()),
        }))
    }

    /// The user's personal access tokens, newest first.
    pub async fn pats(&self, user: &User) -> Result<Vec<PatView>, CoreError> {
        Ok(self
            .db
            .list_pats(user.id)
            .await?
            .into_iter()
            .map(|r| PatView {
                scope: split_scope(r.scope.as_deref()),
                id: r.id,
                name: r.name,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                expires_at: r.expires_at,
                revoked: r.revoked_at.is_some(),
            })
            .collect())
    }

    /// Revokes a personal access token (one of `user`'s, when given);
    /// false when there is no such live token.
    pub async fn revoke_pat(&self, user: Option<&User>, id: &str) -> Result<bool, CoreError> {
        let done = self
            .db
            .revoke_pat(id, user.map(|u| u.id), self.now())
            .await?;
        if done {
            tracing::info!(event = "pat_revoked", "personal access token revoked");
        }
        Ok(done)
    }
}
