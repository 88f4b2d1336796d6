//! The links Flask-Security mails, minted and checked as FS 5.9 does, so a
//! link one side mailed works on the other:
//!
//! | link | salt | payload | valid |
//! |---|---|---|---|
//! | `/reset/<token>` | `reset-salt` | `[fs_uniquifier, hash_data(password hash) or null]` | `reset_password_within` |
//! | `/confirm/<token>` | `confirm-salt` | `[fs_uniquifier, hash_data(email)]` | `confirm_email_within` |
//! | `/change-email/<token>` | `change-email-salt` | `[fs_uniquifier, hash_data(old email), new email]` | `change_email_within` |
//!
//! The tokens are itsdangerous' (see [`super::token`]). `hash_data` is
//! passlib's SHA-256-crypt (`$5$`): salted, so it is verified, never
//! recomputed. FS mints it with 535,000 rounds; gatehouse mints 5,000 (FS
//! accepts any count) and verifies either on the hashing threads.
//!
//! gatehouse checks more than FS 5.9.2 does: a reset link must also match
//! the current password hash (FS ignores that element), so a link dies once
//! the password changes in any way.

use std::fmt::Write as _;

use secrecy::SecretString;
use serde_json::{json, Value};

use super::token::{TokenError, TokenSigner};
use crate::db::User;

/// Which link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Forgot password.
    Reset,
    /// Confirm the email.
    Confirm,
    /// Confirm a new email.
    ChangeEmail,
}

/// Why a link does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Not one of ours, tampered with, used, or for another state of the
    /// account.
    Invalid,
    /// Older than its lifetime.
    Expired,
}

/// The three link signers (cloned into the outbox worker).
#[derive(Clone)]
pub struct Links {
    reset: TokenSigner,
    confirm: TokenSigner,
    change_email: TokenSigner,
}

/// Rounds gatehouse's own `hash_data` uses (passlib's `sha256_crypt`
/// accepts 1,000 to 999,999,999; the implicit default is 5,000).
const MINT_ROUNDS: usize = 5_000;
/// The most rounds a hash in a link may ask for: FS's 535,000, with room.
/// A link is signed, so only a holder of the secret key could ask for
/// more; this bounds the work all the same.
const MAX_ROUNDS: usize = 1_000_000;

/// FS `hash_data(s)`: SHA-256-crypt of `s`, salted.
pub fn hash_data(s: &str) -> String {
    let params = sha_crypt::Sha256Params::new(MINT_ROUNDS).expect("a valid round count");
    sha_crypt::sha256_simple(s, &params).expect("SHA-256-crypt of a string")
}

/// FS `verify_hash(hash, s)` for the `$5$` hashes FS writes: CPU-heavy at
/// FS's round count (run it off the async threads).
pub fn verify_hash(hash: &str, s: &str) -> bool {
    let rounds = hash
        .strip_prefix("$5$rounds=")
        .and_then(|r| r.split('$').next())
        .map_or(Some(5_000), |r| r.parse::<usize>().ok());
    match rounds {
        Some(r) if r <= MAX_ROUNDS => sha_crypt::sha256_check(s, hash).is_ok(),
        _ => false,
    }
}

impl Links {
    /// The signers for `secret_key` with FS's salts (or configured ones).
    pub fn new(secret_key: &SecretString, salts: [&str; 3]) -> Self {
        Links {
            reset: TokenSigner::new(secret_key, salts[0]),
            confirm: TokenSigner::new(secret_key, salts[1]),
            change_email: TokenSigner::new(secret_key, salts[2]),
        }
    }

    fn signer(&self, kind: LinkKind) -> &TokenSigner {
        match kind {
            LinkKind::Reset => &self.reset,
            LinkKind::Confirm => &self.confirm,
            LinkKind::ChangeEmail => &self.change_email,
        }
    }

    /// A reset token for `user` at `now`.
    pub fn mint_reset(&self, user: &User, now: u64) -> String {
        let hash = user.password.as_deref().map(hash_data);
        self.reset
            .mint_value(&json!([user.fs_uniquifier, hash]), now)
    }

    /// A confirmation token for `user` at `now`.
    pub fn mint_confirm(&self, user: &User, now: u64) -> String {
        self.confirm
            .mint_value(&json!([user.fs_uniquifier, hash_data(&user.email)]), now)
    }

    /// A change-of-address token: `user` (as they are now) wants `new_email`.
    pub fn mint_change_email(&self, user: &User, new_email: &str, now: u64) -> String {
        self.change_email.mint_value(
            &json!([user.fs_uniquifier, hash_data(&user.email), new_email]),
            now,
        )
    }

    /// The payload of a `kind` link, when its signature holds and its age
    /// is within `max_age` (`skew` seconds of clock difference allowed).
    pub fn open(
        &self,
        kind: LinkKind,
        token: &str,
        now: u64,
        max_age: u64,
        skew: u64,
    ) -> Result<Vec<Value>, LinkProblem> {
        match self.signer(kind).verify_value(token, now, max_age, skew) {
            Ok(Value::Array(items)) if !items.is_empty() => Ok(items),
            Ok(_) => Err(LinkProblem::Invalid),
            Err(TokenError::Expired) => Err(LinkProblem::Expired),
            Err(_) => Err(LinkProblem::Invalid),
        }
    }
}

/// A duration as FS's `_td_format` writes it: `1 day`, `2 hours`,
/// `1 day and 2 hours`, `1 day, 2 hours, 3 minutes`.
pub fn within_text(seconds: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("year", 365 * 86_400),
        ("month", 30 * 86_400),
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
        ("second", 1),
    ];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (name, size) in UNITS {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    match parts.len() {
        0 => "0 seconds".into(),
        1 => parts.remove(0),
        2 => format!("{} and {}", parts[0], parts[1]),
        _ => parts.join(", "),
    }
}

/// The message for a link that does not work, in FS's words where FS has
/// them (the expired ones end with a space, as FS's do).
pub fn problem_text(kind: LinkKind, problem: LinkProblem, within: u64) -> String {
    let within = within_text(within);
    let mut s = String::new();
    let _ = match (kind, problem) {
        (LinkKind::Reset, LinkProblem::Invalid) => write!(s, "Invalid reset password token."),
        (LinkKind::Reset, LinkProblem::Expired) => {
            write!(s, "You did not reset your password within {within}. ")
        }
        (LinkKind::Confirm, LinkProblem::Invalid) => write!(s, "Invalid confirmation token."),
        (LinkKind::Confirm, LinkProblem::Expired) => {
            write!(s, "You did not confirm your email within {within}. ")
        }
        (LinkKind::ChangeEmail, LinkProblem::Invalid) => write!(
            s,
            "This link to change your email address is not valid (or it was used already)."
        ),
        (LinkKind::ChangeEmail, LinkProblem::Expired) => write!(
            s,
            "Confirmation must be completed within {within}. Please start over."
        ),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors minted by FS 5.9.2 with `SECRET_KEY = "test-secret-key"`
    /// at ts 1700000000 (see docs/WIRE.md §13).
    const FS_RESET: &str = "WyIwZjFlMmQzYzRiNWE2OTc4ODc5NmE1YjRjM2QyZTFmMCIsIiQ1JHJvdW5kcz01MzUwMDAkMDEyMzQ1Njc4OWFiY2RlZiRJbzZxRndOTFMwSm9ERWhTWHYyS2xWWHVmV1gyczR6Y0ZzTFZhMHp4OGVDIl0.ZVPxAA.jSwP-JJIpg2mIENlAoKc9E9O_8g";
    const FS_CONFIRM: &str = "WyIwZjFlMmQzYzRiNWE2OTc4ODc5NmE1YjRjM2QyZTFmMCIsIiQ1JHJvdW5kcz01MzUwMDAkYWJjZGVmZ2hpamtsbW5vcCRKZnlWLmg5WHJZT2R6Vy45OGg1dE1sOFdBTmVOcDF2VXdSVVZ4TDkwSzJEIl0.ZVPxAA.lOdXQmSUq3iWTFcdRYbydJL-aY4";
    const FS_CHANGE: &str = "WyIwZjFlMmQzYzRiNWE2OTc4ODc5NmE1YjRjM2QyZTFmMCIsIiQ1JHJvdW5kcz01MzUwMDAkYWJjZGVmZ2hpamtsbW5vcCRKZnlWLmg5WHJZT2R6Vy45OGg1dE1sOFdBTmVOcDF2VXdSVVZ4TDkwSzJEIiwiYWxpY2UubmV3QGV4YW1wbGUuY29tIl0.ZVPxAA.AjSwUqQHzifDnMm8AMPeEWC-gI0";
    const FS_CONFIRM_COMPRESSED: &str = ".eJwFwckVwCAIBcBeOOfwBVmsJS8HQem_hMy8hB6Xj9RM3bY8wpdtzVly-I4GPVTD0FFla89GNifE2JVF5cBA3w-qdBKD.ZVPxAA.l77iV0mbo2dG7m0E2X3AjQyc35E";
    const TS: u64 = 1_700_000_000;
    const UQ: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn links() -> Links {
        Links::new(
            &SecretString::from("test-secret-key"),
            ["reset-salt", "confirm-salt", "change-email-salt"],
        )
    }

    #[test]
    fn fs_links_open_with_their_payloads() {
        let l = links();
        let reset = l.open(LinkKind::Reset, FS_RESET, TS, 86_400, 0).unwrap();
        assert_eq!(reset[0], UQ);
        assert!(verify_hash(
            reset[1].as_str().unwrap(),
            "$2b$04$abcdefghijklmnopqrstuu5Qj7V6sBvJ4mZ1w5yq8L3P5pDk6m0K."
        ));
        let confirm = l
            .open(LinkKind::Confirm, FS_CONFIRM, TS, 172_800, 0)
            .unwrap();
        assert!(verify_hash(
            confirm[1].as_str().unwrap(),
            "alice@example.com"
        ));
        assert!(!verify_hash(
            confirm[1].as_str().unwrap(),
            "ALICE@example.com"
        ));
        let change = l
            .open(LinkKind::ChangeEmail, FS_CHANGE, TS, 7_200, 0)
            .unwrap();
        assert_eq!(change[2], "alice.new@example.com");
        // Compressed payloads (a hex_md5 element) open too.
        let c = l
            .open(LinkKind::Confirm, FS_CONFIRM_COMPRESSED, TS, 172_800, 0)
            .unwrap();
        assert_eq!(c[1], "c160f8cc69a4f0bf2b0362752353d060");
    }

    #[test]
    fn a_link_is_only_good_for_its_kind_key_and_lifetime() {
        let l = links();
        assert_eq!(
            l.open(LinkKind::Confirm, FS_RESET, TS, 86_400, 0),
            Err(LinkProblem::Invalid)
        );
        let other = Links::new(
            &SecretString::from("another-key"),
            ["reset-salt", "confirm-salt", "change-email-salt"],
        );
        assert_eq!(
            other.open(LinkKind::Reset, FS_RESET, TS, 86_400, 0),
            Err(LinkProblem::Invalid)
        );
        // An age of exactly the lifetime passes, one second more does not;
        // a link from the future is expired, as FS says.
        assert!(l
            .open(LinkKind::Reset, FS_RESET, TS + 86_400, 86_400, 0)
            .is_ok());
        assert_eq!(
            l.open(LinkKind::Reset, FS_RESET, TS + 86_401, 86_400, 0),
            Err(LinkProblem::Expired)
        );
        assert_eq!(
            l.open(LinkKind::Reset, FS_RESET, TS - 1, 86_400, 0),
            Err(LinkProblem::Expired)
        );
        assert_eq!(
            l.open(LinkKind::Reset, "garbage", TS, 86_400, 0),
            Err(LinkProblem::Invalid)
        );
    }

    #[test]
    fn our_links_have_fs_payloads_and_cheap_hashes_fs_accepts() {
        let l = links();
        let user = User {
            id: 1,
            email: "alice@example.com".into(),
            password: Some("$2b$04$whatever".into()),
            active: true,
            fs_uniquifier: UQ.into(),
            tf_primary_method: None,
        };
        let t = l.mint_reset(&user, TS);
        let p = l.open(LinkKind::Reset, &t, TS, 60, 0).unwrap();
        let h = p[1].as_str().unwrap();
        assert!(h.starts_with("$5$") && !h.starts_with("$5$rounds="), "{h}");
        assert!(verify_hash(h, "$2b$04$whatever"));
        let no_password = User {
            password: None,
            ..user.clone()
        };
        let p = l
            .open(LinkKind::Reset, &l.mint_reset(&no_password, TS), TS, 60, 0)
            .unwrap();
        assert_eq!(p[1], Value::Null);
        let p = l
            .open(
                LinkKind::ChangeEmail,
                &l.mint_change_email(&user, "jörg@example.com", TS),
                TS,
                60,
                0,
            )
            .unwrap();
        assert_eq!(p[2], "jörg@example.com");
    }

    #[test]
    fn hashes_fs_writes_verify_and_absurd_ones_do_not() {
        // passlib vectors: 535000, 1000 and the implicit 5000 rounds.
        let s = "alice@example.com";
        assert!(verify_hash(
            "$5$rounds=535000$abcdefghijklmnop$JfyV.h9XrYOdzW.98h5tMl8WANeNp1vUwRUVxL90K2D",
            s
        ));
        assert!(verify_hash(
            "$5$rounds=1000$abcdefghijklmnop$.QBq9KO3PVMNruT6l.IyiywFpI9spMYyrbxgd4Oynv7",
            s
        ));
        assert!(verify_hash(
            "$5$saltsaltsaltsalt$cHtvV2ob.ucsIT0sr0pJoU3WVbaArdZV63plHv9Kyg0",
            s
        ));
        assert!(!verify_hash(
            "$5$rounds=999999999$abcdefghijklmnop$JfyV.h9XrYOdzW.98h5tMl8WANeNp1vUwRUVxL90K2D",
            s
        ));
        assert!(!verify_hash("not-a-hash", s));
        assert!(!verify_hash("$5$rounds=x$a$b", s));
    }

    #[test]
    fn durations_read_as_fs_writes_them() {
        assert_eq!(within_text(86_400), "1 day");
        assert_eq!(within_text(2 * 86_400), "2 days");
        assert_eq!(within_text(7_200), "2 hours");
        assert_eq!(within_text(1_800), "30 minutes");
        assert_eq!(within_text(86_400 + 7_200), "1 day and 2 hours");
        assert_eq!(
            within_text(86_400 + 7_200 + 180),
            "1 day, 2 hours, 3 minutes"
        );
        assert_eq!(within_text(0), "0 seconds");
        assert_eq!(
            problem_text(LinkKind::Reset, LinkProblem::Expired, 86_400),
            "You did not reset your password within 1 day. "
        );
    }
}
