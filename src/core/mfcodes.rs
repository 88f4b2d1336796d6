//! Multi-factor recovery codes, as Flask-Security keeps them: a set of
//! `xxxx-xxxx-xxxx` codes (12 hex digits) in the user's
//! `mf_recovery_codes` column, comma-separated, each Fernet-encrypted when
//! `recovery_codes_keys` (FS `MULTI_FACTOR_RECOVERY_CODES_KEYS`) is set.
//! A code stands in for the authenticator once, at a sign-in.

use subtle::ConstantTimeEq;

use super::fernet::{decrypt_any, FernetKey};
use super::recovery::{Notice, Origin};
use super::{CoreError, Security};
use crate::db::User;

/// `n` new codes, as FS's `generate_recovery_codes` makes them.
pub fn generate(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut raw = [0u8; 6];
            getrandom::fill(&mut raw).expect("the OS random source works");
            let hex = super::hex(&raw);
            format!("{}-{}-{}", &hex[..4], &hex[4..8], &hex[8..])
        })
        .collect()
}

/// A typed code as FS compares it, forgiving what people do when typing:
/// spaces around, capitals.
fn normalize(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

/// What the code step offers instead of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RescueOptions {
    /// A recovery code (`/mf-recovery`).
    pub recovery_code: bool,
    /// A help request to the people who run the server (`/tf-rescue`).
    pub help: bool,
}

impl Security {
    fn recovery_keys(&self) -> Vec<FernetKey> {
        // Checked at start: every configured key parses.
        self.config
            .recovery_codes_keys
            .iter()
            .filter_map(|k| FernetKey::parse(k))
            .collect()
    }

    /// The stored codes, decrypted (those that no key opens, or past
    /// `recovery_code_ttl`, are left out, as FS leaves them out), with the
    /// raw stored form of each.
    async fn stored_codes(
        &self,
        user_id: i32,
    ) -> Result<(Option<String>, Vec<(String, String)>), CoreError> {
        let raw = self.db.recovery_codes(user_id).await?;
        let keys = self.recovery_keys();
        let now = self.now().max(0) as u64;
        let codes = raw
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|c| !c.is_empty())
            .filter_map(|stored| {
                let plain = if keys.is_empty() {
                    stored.to_owned()
                } else {
                    String::from_utf8(decrypt_any(
                        &keys,
                        stored,
                        now,
                        self.config.recovery_code_ttl,
                    )?)
                    .ok()?
                };
                Some((plain, stored.to_owned()))
            })
            .collect();
        Ok((raw, codes))
    }

    /// The user's current recovery codes (FS's GET `/mf-recovery-codes`).
    pub async fn recovery_codes(&self, user: &User) -> Result<Vec<String>, CoreError> {
        self.require_recovery_codes()?;
        let (_, codes) = self.stored_codes(user.id).await?;
        Ok(codes.into_iter().map(|(plain, _)| plain).collect())
    }

    fn require_recovery_codes(&self) -> Result<(), CoreError> {
        if self.config.recovery_codes {
            Ok(())
        } else {
            Err(CoreError::Validation(super::FieldErrors::one(
                "",
                "Recovery codes are not offered on this server.",
            )))
        }
    }

    /// A new set of recovery codes for `user`, replacing any old set; the
    /// codes are shown once (stored encrypted when keys are configured).
    pub async fn new_recovery_codes(&self, user: &User) -> Result<Vec<String>, CoreError> {
        self.require_recovery_codes()?;
        let codes = generate(self.config.recovery_codes_n);
        let keys = self.recovery_keys();
        let now = self.now().max(0) as u64;
        let stored: Vec<String> = match keys.first() {
            Some(key) => codes
                .iter()
                .map(|c| key.encrypt(c.as_bytes(), now))
                .collect(),
            None => codes.clone(),
        };
        self.db
            .set_recovery_codes(user.id, None, Some(&stored.join(",")))
            .await?;
        tracing::info!(
            event = "recovery_codes",
            user_id = user.id,
            "new recovery codes made"
        );
        Ok(codes)
    }

    /// The second step of a two-factor sign-in with a recovery code instead
    /// of the authenticator (FS `/mf-recovery`): counted on the account's
    /// throttle like a code; the code is used up (a compare-and-set on the
    /// stored set, so two uses at once cannot both pass), and the user is
    /// told by mail.
    pub async fn use_recovery_code(
        &self,
        uid: &str,
        at: i64,
        code: &str,
        origin: &Origin,
    ) -> Result<User, CoreError> {
        self.require_recovery_codes()?;
        let user = self.pending_user(uid, at).await?;
        let throttle = super::email_key("acct", &user.email);
        self.throttle(&throttle).await?;
        let typed = normalize(code);
        let (raw, codes) = self.stored_codes(user.id).await?;
        // Every stored code is compared, in constant time each.
        let mut found = None;
        for (plain, stored) in &codes {
            if bool::from(plain.as_bytes().ct_eq(typed.as_bytes())) {
                found = Some(stored.clone());
            }
        }
        let (Some(used), Some(raw)) = (found, raw) else {
            return Err(CoreError::InvalidRecoveryCode);
        };
        let rest: Vec<&str> = raw.split(',').filter(|c| *c != used).collect();
        let rest = (!rest.is_empty()).then(|| rest.join(","));
        if !self
            .db
            .set_recovery_codes(user.id, Some(&raw), rest.as_deref())
            .await?
        {
            // The set changed in between: this code, or another, was used
            // at the same moment. Refused; a retry sees the new set.
            return Err(CoreError::InvalidRecoveryCode);
        }
        self.db.clear_throttle(&throttle).await?;
        tracing::info!(
            event = "login",
            outcome = "ok",
            method = "recovery_code",
            user_id = user.id,
            "signed in with a recovery code"
        );
        self.notify(&user, Notice::RecoveryCodeUsed, origin).await;
        Ok(user)
    }

    /// What the code step offers when the authenticator is not at hand
    /// (FS's `recovery_options`): a recovery code, when the account has
    /// some; a help request, when `two_factor_rescue_mail` is set.
    pub async fn rescue_options(&self, uid: &str, at: i64) -> Result<RescueOptions, CoreError> {
        let user = self.pending_user(uid, at).await?;
        let codes = self.config.recovery_codes && self.db.recovery_codes(user.id).await?.is_some();
        Ok(RescueOptions {
            recovery_code: codes,
            help: self.config.two_factor_rescue_mail.is_some(),
        })
    }

    /// Asks the people who run the server for help with a second factor
    /// (FS's `/tf-rescue` "help"); the user must be at the code step.
    pub async fn two_factor_rescue(
        &self,
        uid: &str,
        at: i64,
        origin: &Origin,
    ) -> Result<(), CoreError> {
        let user = self.pending_user(uid, at).await?;
        tracing::info!(
            event = "tf_rescue",
            user_id = user.id,
            "help with two-factor sign-in requested"
        );
        self.queue_notice(
            &user,
            Notice::TwoFactorRescue,
            origin,
            serde_json::json!({}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_like_fs_codes() {
        let codes = generate(5);
        assert_eq!(codes.len(), 5);
        for c in &codes {
            assert_eq!(c.len(), 14, "{c}");
            let parts: Vec<&str> = c.split('-').collect();
            assert_eq!(parts.len(), 3);
            assert!(parts
                .iter()
                .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_hexdigit())));
        }
        assert_ne!(codes[0], codes[1]);
        assert_eq!(normalize(" ABCD-ef01-2345 "), "abcd-ef01-2345");
    }
}
