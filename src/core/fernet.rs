//! Fernet (the `cryptography` package's `Fernet` and `MultiFernet`), which
//! Flask-Security uses to encrypt stored recovery codes when
//! `SECURITY_MULTI_FACTOR_RECOVERY_CODES_KEYS` is set: a key is 32 bytes,
//! URL-safe base64 (the HMAC-SHA256 key, then the AES-128-CBC key); a token
//! is URL-safe base64 of `0x80 | time (8, BE) | IV (16) | ciphertext |
//! HMAC (32)`.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit as _};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// One Fernet key.
#[derive(Clone)]
pub struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl std::fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FernetKey(..)")
    }
}

impl FernetKey {
    /// A key as `Fernet.generate_key()` writes it; `None` if it is not one.
    pub fn parse(text: &str) -> Option<FernetKey> {
        let raw = URL_SAFE.decode(text.trim()).ok()?;
        if raw.len() != 32 {
            return None;
        }
        let mut key = FernetKey {
            signing: [0; 16],
            encryption: [0; 16],
        };
        key.signing.copy_from_slice(&raw[..16]);
        key.encryption.copy_from_slice(&raw[16..]);
        Some(key)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.signing)
            .expect("HMAC takes any key length");
        mac.update(data);
        mac
    }

    /// Encrypts `plain` at `now` (unix seconds) with this IV.
    fn encrypt_with(&self, plain: &[u8], now: u64, iv: [u8; 16]) -> String {
        let cipher = aes::Aes128::new(&self.encryption.into());
        let mut out = Vec::with_capacity(57 + plain.len() + 16);
        out.push(0x80);
        out.extend_from_slice(&now.to_be_bytes());
        out.extend_from_slice(&iv);
        // PKCS#7 padding, then CBC.
        let pad = 16 - plain.len() % 16;
        let mut data = plain.to_vec();
        data.extend(std::iter::repeat_n(pad as u8, pad));
        let mut prev = iv;
        for chunk in data.chunks(16) {
            let mut block = [0u8; 16];
            for (i, b) in chunk.iter().enumerate() {
                block[i] = b ^ prev[i];
            }
            let mut ga = block.into();
            cipher.encrypt_block(&mut ga);
            prev = ga.into();
            out.extend_from_slice(&prev);
        }
        let tag = self.mac(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        URL_SAFE.encode(out)
    }

    /// Encrypts `plain` at `now` (unix seconds), with a random IV.
    pub fn encrypt(&self, plain: &[u8], now: u64) -> String {
        let mut iv = [0u8; 16];
        getrandom::fill(&mut iv).expect("the OS random source works");
        self.encrypt_with(plain, now, iv)
    }

    /// The plaintext of `token`, if this key made it (and, with a `ttl`,
    /// it is younger than `ttl` seconds at `now`).
    pub fn decrypt(&self, token: &str, now: u64, ttl: Option<u64>) -> Option<Vec<u8>> {
        let raw = URL_SAFE.decode(token.trim()).ok()?;
        if raw.len() < 57 || raw[0] != 0x80 || (raw.len() - 57) % 16 != 0 {
            return None;
        }
        let (body, tag) = raw.split_at(raw.len() - 32);
        self.mac(body).verify_slice(tag).ok()?;
        let at = u64::from_be_bytes(body[1..9].try_into().ok()?);
        if let Some(ttl) = ttl {
            // As `cryptography`: too old, or more than a minute ahead.
            if at.saturating_add(ttl) < now || at > now.saturating_add(60) {
                return None;
            }
        }
        let cipher = aes::Aes128::new(&self.encryption.into());
        let mut prev: [u8; 16] = body[9..25].try_into().ok()?;
        let mut plain = Vec::with_capacity(body.len() - 25);
        for chunk in body[25..].chunks(16) {
            let mut ga: aes::Block = <[u8; 16]>::try_from(chunk).ok()?.into();
            cipher.decrypt_block(&mut ga);
            for (i, b) in ga.iter().enumerate() {
                plain.push(b ^ prev[i]);
            }
            prev = chunk.try_into().ok()?;
        }
        let pad = *plain.last()? as usize;
        if pad == 0
            || pad > 16
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| *b as usize != pad)
        {
            return None;
        }
        plain.truncate(plain.len() - pad);
        Some(plain)
    }
}

/// `MultiFernet`: encrypts with the first key, decrypts with any.
pub fn decrypt_any(keys: &[FernetKey], token: &str, now: u64, ttl: Option<u64>) -> Option<Vec<u8>> {
    keys.iter().find_map(|k| k.decrypt(token, now, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Fernet specification's vector (github.com/fernet/spec,
    // generate.json and verify.json).
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const NOW: u64 = 499_162_800; // 1985-10-26T01:20:00-07:00

    #[test]
    fn spec_vector_encrypts_and_decrypts() {
        let key = FernetKey::parse(SECRET).unwrap();
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(key.encrypt_with(b"hello", NOW, iv), TOKEN);
        assert_eq!(key.decrypt(TOKEN, NOW + 60, Some(60)).unwrap(), b"hello");
        assert_eq!(key.decrypt(TOKEN, NOW + 61, Some(60)), None, "past its ttl");
        assert_eq!(key.decrypt(TOKEN, u64::MAX, None).unwrap(), b"hello");
    }

    #[test]
    fn tampered_tokens_and_other_keys_fail() {
        let key = FernetKey::parse(SECRET).unwrap();
        let other = FernetKey::parse(&URL_SAFE.encode([7u8; 32])).unwrap();
        let mut raw = URL_SAFE.decode(TOKEN).unwrap();
        raw[30] ^= 1;
        assert_eq!(key.decrypt(&URL_SAFE.encode(&raw), NOW, None), None);
        assert_eq!(other.decrypt(TOKEN, NOW, None), None);
        assert_eq!(
            decrypt_any(&[other.clone(), key.clone()], TOKEN, NOW, None).unwrap(),
            b"hello"
        );
        let round = other.encrypt(b"0123456789abcdef-x", NOW);
        assert_eq!(
            other.decrypt(&round, NOW, None).unwrap(),
            b"0123456789abcdef-x"
        );
        assert!(FernetKey::parse("short").is_none());
    }
}
