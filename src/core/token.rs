//! Flask-Security-Too compatible auth tokens (itsdangerous `URLSafeTimedSerializer`).
//!
//! ```text
//! token   = payload "." ts "." sig
//! payload = b64url(json)  |  "." b64url(zlib(json))
//! ts      = b64url(big-endian unix seconds, leading zero bytes stripped)
//! sig     = b64url(HMAC-SHA1(key, payload "." ts))
//! key     = SHA1(salt || "signer" || secret_key)
//! ```
//!
//! The functions here are pure: the caller passes the clock, so the vectors
//! produced by Flask-Security-Too verify in tests with their original dates.

use std::io::Read;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// Longest token we are willing to look at. FS tokens are ~150 bytes; the cap
/// bounds the work an attacker can make us do before the MAC check.
const MAX_TOKEN_LEN: usize = 4096;
/// Cap on a decompressed payload (zlib bomb defence).
const MAX_PAYLOAD_LEN: u64 = 4096;

/// Why a token was refused. Every variant is treated like "no token" by the
/// guards; the distinction is for logs and tests only.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three dot-separated base64 parts, or oversized.
    #[error("token is malformed")]
    Malformed,
    /// The MAC does not match: tampered, or another key.
    #[error("token signature does not match")]
    BadSignature,
    /// Older than `token_max_age`, or past its own `exp`.
    #[error("token is expired")]
    Expired,
    /// Dated after now.
    #[error("token is dated in the future")]
    FromTheFuture,
    /// Not an FS payload (no `ver`/`uid`/`exp`, or a bad uid).
    #[error("token payload is not a Flask-Security payload")]
    BadPayload,
}

/// What a valid auth token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The user's fs_uniquifier.
    pub uid: String,
    /// When it was issued (unix seconds).
    pub iat: u64,
    /// The primary authentication time it carries (FS `fs_paa`; 0 without).
    pub paa: f64,
    /// The device it was minted for (gatehouse's tokens since devices).
    pub device: Option<String>,
}

/// Signs and verifies tokens with a key derived once from the secrets.
#[derive(Clone)]
pub struct TokenSigner {
    /// HMAC-SHA1 state keyed with the derived key, cloned per use so the key
    /// schedule is computed once, not on every request.
    mac: HmacSha1,
}

impl TokenSigner {
    /// Derives the itsdangerous "django-concat" key: SHA1(salt + "signer" + secret).
    pub fn new(secret_key: &SecretString, salt: &str) -> Self {
        let key = derive_key(secret_key.expose_secret().as_bytes(), salt.as_bytes());
        let mac = <HmacSha1 as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
        TokenSigner { mac }
    }

    fn signature(&self, signed_part: &[u8]) -> HmacSha1 {
        let mut mac = self.mac.clone();
        mac.update(signed_part);
        mac
    }

    /// Signs any JSON value at `now`, as itsdangerous' `dumps` does
    /// (compact JSON, not compressed): the links FS mails (reset, confirm,
    /// change of address) are such tokens with a list payload.
    pub fn mint_value(&self, value: &serde_json::Value, now: u64) -> String {
        self.sign_json(
            &serde_json::to_vec(value).expect("a JSON value serializes"),
            now,
        )
    }

    /// `b64(json) "." ts "." sig`.
    fn sign_json(&self, json: &[u8], now: u64) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(json);
        out.push('.');
        out.push_str(&encode_timestamp(now));
        let sig = self.signature(out.as_bytes()).finalize().into_bytes();
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        out
    }

    /// Signs a JSON value with no timestamp, as itsdangerous'
    /// `URLSafeSerializer.dumps` does (FS's refresh tokens), uncompressed.
    pub fn sign_untimed(&self, value: &serde_json::Value) -> String {
        let json = serde_json::to_vec(value).expect("a JSON value serializes");
        let mut out = URL_SAFE_NO_PAD.encode(json);
        let sig = self.signature(out.as_bytes()).finalize().into_bytes();
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        out
    }

    /// Verifies a `URLSafeSerializer` token (no timestamp; compressed or
    /// not) and returns its value.
    pub fn verify_untimed(&self, token: &str) -> Result<serde_json::Value, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed)?;
        self.signature(payload.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        decode_payload(payload)
    }

    /// Verifies a token of any payload and returns it. As FS judges its
    /// links: the MAC first; then a timestamp more than `skew` seconds
    /// ahead of `now`, or older than `max_age`, is [`TokenError::Expired`]
    /// (an age of exactly `max_age` still passes).
    pub fn verify_value(
        &self,
        token: &str,
        now: u64,
        max_age: u64,
        skew: u64,
    ) -> Result<serde_json::Value, TokenError> {
        let (payload, ts) = self.verify_signed(token)?;
        if ts > now.saturating_add(skew) || now.saturating_sub(ts) > max_age {
            return Err(TokenError::Expired);
        }
        decode_payload(payload)
    }

    /// Checks the MAC in constant time; returns the payload part and the
    /// timestamp.
    fn verify_signed<'t>(&self, token: &'t str) -> Result<(&'t str, u64), TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed)?;
        self.signature(signed.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let (payload, ts_b64) = signed.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let ts = decode_timestamp(ts_b64).ok_or(TokenError::Malformed)?;
        Ok((payload, ts))
    }

    /// Mints a token for `uid`, exactly as FS `get_auth_token()` would at
    /// `now` (unix seconds) with primary-authentication time `fs_paa`.
    pub fn mint(&self, uid: &str, fs_paa: f64, now: u64) -> String {
        self.mint_for(uid, fs_paa, now, None)
    }

    /// [`mint`](Self::mint) for a token of a device (gatehouse's
    /// `gh_dev` claim after FS's, which FS ignores): revoking the device
    /// revokes the token. Without a device, exactly FS's token.
    pub fn mint_for(&self, uid: &str, fs_paa: f64, now: u64, device: Option<&str>) -> String {
        #[derive(serde::Serialize)]
        struct Payload<'a> {
            ver: &'a str,
            uid: &'a str,
            fs_paa: f64,
            exp: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            gh_dev: Option<&'a str>,
        }
        // Field order matters for byte-compatibility: ver, uid, fs_paa, exp.
        let json = serde_json::to_vec(&Payload {
            ver: "5",
            uid,
            fs_paa,
            exp: 0,
            gh_dev: device,
        })
        .expect("payload serializes");
        self.sign_json(&json, now)
    }

    /// Verifies a token: its uid, when it was issued, and its device, if
    /// gatehouse minted it for one.
    pub fn verify_token(
        &self,
        token: &str,
        now: u64,
        max_age: u64,
        skew: u64,
    ) -> Result<Claims, TokenError> {
        let (payload, ts) = self.verify_signed(token)?;
        if ts > now.saturating_add(skew) {
            return Err(TokenError::FromTheFuture);
        }
        if now.saturating_sub(ts) > max_age {
            return Err(TokenError::Expired);
        }
        let json = decode_payload(payload)?;
        let uid = uid_from_payload(&json, now)?;
        let device = match json.get("gh_dev") {
            None => None,
            Some(serde_json::Value::String(d)) if !d.is_empty() && d.len() <= 64 => Some(d.clone()),
            Some(_) => return Err(TokenError::BadPayload),
        };
        Ok(Claims {
            uid,
            iat: ts,
            paa: json
                .get("fs_paa")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            device,
        })
    }

    /// Verifies a token and returns the `uid` (fs_uniquifier) it carries.
    ///
    /// The MAC is checked in constant time before anything of the payload is
    /// decoded; the age is checked against `max_age` seconds at `now`.
    pub fn verify(&self, token: &str, now: u64, max_age: u64) -> Result<String, TokenError> {
        self.verify_token(token, now, max_age, 0).map(|c| c.uid)
    }
}

/// itsdangerous "django-concat" key derivation.
pub fn derive_key(secret: &[u8], salt: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(salt);
    h.update(b"signer");
    h.update(secret);
    h.finalize().into()
}

fn encode_timestamp(ts: u64) -> String {
    let bytes = ts.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    URL_SAFE_NO_PAD.encode(&bytes[first..])
}

fn decode_timestamp(b64: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn decode_payload(payload: &str) -> Result<serde_json::Value, TokenError> {
    let bytes = match payload.strip_prefix('.') {
        Some(compressed) => {
            let raw = URL_SAFE_NO_PAD
                .decode(compressed)
                .map_err(|_| TokenError::Malformed)?;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&raw[..])
                .take(MAX_PAYLOAD_LEN + 1)
                .read_to_end(&mut out)
                .map_err(|_| TokenError::Malformed)?;
            if out.len() as u64 > MAX_PAYLOAD_LEN {
                return Err(TokenError::Malformed);
            }
            out
        }
        None => URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?,
    };
    serde_json::from_slice(&bytes).map_err(|_| TokenError::BadPayload)
}

/// Reads the uid out of an FS 5 object payload, or a legacy list payload
/// (`[uid]` from FS 4, `[_, _, uid]` from FS 3).
fn uid_from_payload(json: &serde_json::Value, now: u64) -> Result<String, TokenError> {
    use serde_json::Value;
    let uid = match json {
        Value::Object(map) => {
            if !map.contains_key("ver") {
                return Err(TokenError::BadPayload);
            }
            let exp = map.get("exp").ok_or(TokenError::BadPayload)?;
            let exp = exp.as_f64().ok_or(TokenError::BadPayload)?;
            if exp != 0.0 && exp < now as f64 {
                return Err(TokenError::Expired);
            }
            map.get("uid")
        }
        Value::Array(items) if items.len() == 1 => items.first(),
        Value::Array(items) if items.len() == 3 => items.get(2),
        _ => None,
    };
    match uid {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
        _ => Err(TokenError::BadPayload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(&SecretString::from("super-secret-key"), "remember-salt")
    }

    #[test]
    fn timestamp_roundtrip() {
        assert_eq!(encode_timestamp(1795329074), "awKMMg");
        assert_eq!(decode_timestamp("awKMMg"), Some(1795329074));
        assert_eq!(encode_timestamp(0), "");
        assert_eq!(decode_timestamp("AAAAAAAAAAAB"), None);
    }

    #[test]
    fn legacy_list_payloads() {
        let now = 10;
        let v = serde_json::json!(["abc"]);
        assert_eq!(uid_from_payload(&v, now).unwrap(), "abc");
        let v = serde_json::json!([1, "x", "abc"]);
        assert_eq!(uid_from_payload(&v, now).unwrap(), "abc");
        let v = serde_json::json!(["a", "b"]);
        assert_eq!(uid_from_payload(&v, now), Err(TokenError::BadPayload));
    }

    #[test]
    fn object_payload_rules() {
        let ok = serde_json::json!({"ver": "4", "uid": "u", "exp": 0});
        assert_eq!(uid_from_payload(&ok, 100).unwrap(), "u");
        let no_ver = serde_json::json!({"uid": "u", "exp": 0});
        assert_eq!(uid_from_payload(&no_ver, 100), Err(TokenError::BadPayload));
        let no_exp = serde_json::json!({"ver": "5", "uid": "u"});
        assert_eq!(uid_from_payload(&no_exp, 100), Err(TokenError::BadPayload));
        let expired = serde_json::json!({"ver": "5", "uid": "u", "exp": 50});
        assert_eq!(uid_from_payload(&expired, 100), Err(TokenError::Expired));
        let live = serde_json::json!({"ver": "5", "uid": "u", "exp": 150});
        assert_eq!(uid_from_payload(&live, 100).unwrap(), "u");
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let s = signer();
        for t in [
            "",
            ".",
            "..",
            "a.b.c",
            "...",
            "a..",
            "é.é.é",
            &"x".repeat(5000),
        ] {
            assert!(s.verify(t, 1_800_000_000, 86400).is_err(), "{t}");
        }
    }
}
