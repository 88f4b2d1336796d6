//! Flask-Security 5.9's refresh tokens, byte-compatible: an itsdangerous
//! `URLSafeSerializer` token (salt `refresh_token_salt`) over `{"ver":"1",
//! "uid", "expires_at", "last_used_at", "name", "family", "gen"}`, tracked
//! by a row of `fs_refresh` (family + generation). Each use hands out a new
//! auth token and the family's next generation.
//!
//! Better than FS, on purpose:
//! - the generation moves by one compare-and-set (FS reads, then writes);
//! - for `refresh_token_grace` seconds after a refresh, the token it
//!   replaced gets the very same new pair (two tabs refreshing at once both
//!   succeed); reuse later revokes the family, as any older generation does;
//! - the new auth token keeps the device's original authentication time,
//!   so a refresh never makes a session "fresh" (FS resets it to now).

use serde_json::{json, Value};

use super::recovery::Origin;
use super::token::TokenSigner;
use super::{CoreError, Security};
use crate::db::{DbTime, RefreshRow, User};

/// Why a refresh token was refused (FS's `RefreshTokenErrors` names, shown
/// in its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshProblem {
    /// Not a refresh token of this server.
    Invalid,
    /// Its family is unknown (deleted, or another database).
    NotFound,
    /// An old generation: reuse, so the family was revoked.
    GenMismatch,
    /// Past its age, or unused for too long.
    Expired,
    /// Its family was revoked (sign-out, reuse, a device signed out).
    Revoked,
    /// Its user is gone or rotated (signed out everywhere).
    NoUser,
}

impl RefreshProblem {
    /// FS's message.
    pub fn message(self) -> String {
        let reason = match self {
            RefreshProblem::Invalid => "INVALID",
            RefreshProblem::NotFound => "NOT_FOUND",
            RefreshProblem::GenMismatch => "GEN_MISMATCH",
            RefreshProblem::Expired => "EXPIRED",
            RefreshProblem::Revoked => "REVOKED",
            RefreshProblem::NoUser => return "Specified user does not exist".to_owned(),
        };
        format!("Refresh token is invalid ({reason})")
    }
}

/// What a refresh hands out.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The user.
    pub user: User,
    /// A new auth token (of the family's device).
    pub auth_token: String,
    /// The family's next refresh token.
    pub refresh_token: String,
}

/// The claims of a refresh token.
struct Claims {
    uid: String,
    family: String,
    gen: i64,
}

fn claims(v: &Value) -> Option<Claims> {
    Some(Claims {
        uid: v.get("uid")?.as_str()?.to_owned(),
        family: v.get("family")?.as_str()?.to_owned(),
        gen: v.get("gen")?.as_i64()?,
    })
}

impl Security {
    fn refresh_signer(&self) -> TokenSigner {
        TokenSigner::new(
            self.config.secret_key.expose(),
            &self.config.refresh_token_salt,
        )
    }

    /// The family's refresh token at generation `gen`, last used at
    /// `last_used` (FS's `get_refresh_token`; the same inputs give the same
    /// token).
    fn refresh_token_of(&self, uid: &str, family: &str, gen: i64, row: &RefreshRow) -> String {
        self.refresh_signer().sign_untimed(&json!({
            "ver": "1",
            "uid": uid,
            "expires_at": row.expires_at.unix_f64(),
            "last_used_at": row.last_used_at.unix_f64(),
            "name": row.name,
            "family": family,
            "gen": gen,
        }))
    }

    /// A new refresh family for a sign-in of `user` on `device` (FS's
    /// `new_refresh_tracker`, named `default`): its first token.
    pub async fn new_refresh(
        &self,
        user: &User,
        device: Option<&str>,
    ) -> Result<String, CoreError> {
        let family = super::random_hex::<16>();
        let now = DbTime::from_unix_f64(self.clock.now());
        let expires_at =
            DbTime::from_unix_f64(now.unix_f64() + self.config.refresh_token_max_age as f64);
        self.db
            .create_refresh(&family, user.id, "default", expires_at, now, device)
            .await?;
        if let Some(d) = device {
            self.extend_device(d, expires_at.unix()).await?;
        }
        let row = RefreshRow {
            user_id: user.id,
            gen: Some(1),
            expires_at,
            revoked_at: None,
            last_used_at: now,
            name: "default".to_owned(),
        };
        Ok(self.refresh_token_of(&user.fs_uniquifier, &family, 1, &row))
    }

    /// `/refresh-token`: a new auth token and the family's next refresh
    /// token for a valid one (see the module's rules).
    pub async fn refresh(&self, token: &str, origin: &Origin) -> Result<Refreshed, CoreError> {
        let refused = |p: RefreshProblem| CoreError::RefreshRefused(p);
        let c = self
            .refresh_signer()
            .verify_untimed(token.trim())
            .ok()
            .as_ref()
            .and_then(claims)
            .ok_or(refused(RefreshProblem::Invalid))?;
        let mut row = self
            .db
            .refresh_row(&c.family)
            .await?
            .ok_or(refused(RefreshProblem::NotFound))?;
        let mut rounds = 0;
        let (gen, row) = loop {
            rounds += 1;
            if rounds > 3 {
                // The row kept moving under us: let the client retry.
                return Err(CoreError::Busy);
            }
            let now = self.clock.now();
            let current = i64::from(row.gen.unwrap_or(1));
            if row.revoked_at.is_some() {
                return Err(refused(RefreshProblem::Revoked));
            }
            if row.expires_at.unix_f64() < now
                || now - row.last_used_at.unix_f64() > self.config.refresh_token_max_idle as f64
            {
                return Err(refused(RefreshProblem::Expired));
            }
            if c.gen == current {
                let at = DbTime::from_unix_f64(now);
                if self
                    .db
                    .exchange_refresh(&c.family, current as i32, at)
                    .await?
                {
                    break (
                        current + 1,
                        RefreshRow {
                            gen: Some(current as i32 + 1),
                            last_used_at: at,
                            ..row
                        },
                    );
                }
                // Another refresh with this token moved it first: judge
                // again against the row it left (the grace case, usually).
                row = self
                    .db
                    .refresh_row(&c.family)
                    .await?
                    .ok_or(refused(RefreshProblem::NotFound))?;
                continue;
            }
            let grace = self.config.refresh_token_grace as f64;
            if c.gen == current - 1 && grace > 0.0 && now - row.last_used_at.unix_f64() <= grace {
                // The token just replaced, within the grace window: the
                // same pair the refresh that replaced it got.
                break (current, row);
            }
            // Reuse of an old generation: someone else has (or had) this
            // family's token. Revoke it all: the family, and its device with
            // the auth tokens minted from it (the copier's too).
            self.db
                .revoke_refresh(&c.family, DbTime::from_unix_f64(now))
                .await?;
            if let Some((device, _)) = self.db.device_of_family(&c.family).await? {
                self.db
                    .revoke_devices(row.user_id, Some(&device), None)
                    .await?;
            }
            tracing::warn!(
                event = "refresh_reuse",
                user_id = row.user_id,
                "an old refresh token was used again: its family is revoked"
            );
            return Err(refused(RefreshProblem::GenMismatch));
        };
        let user = self
            .db
            .user_by_uniquifier(&c.uid)
            .await?
            .filter(|u| u.active && u.id == row.user_id)
            .ok_or(refused(RefreshProblem::NoUser))?;
        // The family's device (one FS made gets one here, never fresh).
        let (device, authn_at) = match self.db.device_of_family(&c.family).await? {
            Some(found) => found,
            None => {
                // A device signed out in the meantime revoked its family:
                // never adopt that one.
                let now_row = self.db.refresh_row(&c.family).await?;
                if now_row.is_none_or(|r| r.revoked_at.is_some()) {
                    return Err(refused(RefreshProblem::Revoked));
                }
                let d = self
                    .new_device(&user, origin, 0.0, row.expires_at.unix())
                    .await?;
                if self.db.link_family(&d, &c.family).await? {
                    (d, 0.0)
                } else {
                    // Another first refresh linked it first: its device.
                    self.db.delete_device(&d).await?;
                    self.db
                        .device_of_family(&c.family)
                        .await?
                        .ok_or(refused(RefreshProblem::Revoked))?
                }
            }
        };
        let minted_at = row.last_used_at.unix().max(0) as u64;
        self.extend_device(&device, minted_at as i64 + self.config.token_max_age as i64)
            .await?;
        let auth_token =
            self.signer
                .mint_for(&user.fs_uniquifier, authn_at, minted_at, Some(&device));
        let refresh_token = self.refresh_token_of(&c.uid, &c.family, gen, &row);
        tracing::info!(event = "refresh", user_id = user.id, "tokens refreshed");
        Ok(Refreshed {
            user,
            auth_token,
            refresh_token,
        })
    }

    /// Signing out with a refresh token revokes its family (FS's logout
    /// form). A bad token is ignored: the sign-out goes on.
    pub async fn revoke_refresh_token(&self, token: &str) -> Result<(), CoreError> {
        let Some(c) = self
            .refresh_signer()
            .verify_untimed(token.trim())
            .ok()
            .as_ref()
            .and_then(claims)
        else {
            return Ok(());
        };
        self.db
            .revoke_refresh(&c.family, DbTime::from_unix_f64(self.clock.now()))
            .await?;
        tracing::info!(
            event = "refresh_revoked",
            "refresh family revoked at sign-out"
        );
        Ok(())
    }
}
