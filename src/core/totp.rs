//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), as
//! authenticator apps and Flask-Security's passlib TOTP make them: HMAC-SHA1,
//! 30-second steps, 6 digits.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const PERIOD: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;

/// RFC 4226 HOTP: the code for `counter`, `digits` long.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The step `unix` falls in.
pub fn counter_at(unix: u64) -> u64 {
    unix / PERIOD
}

/// The 6-digit code for `unix`, zero-padded.
pub fn code_at(key: &[u8], unix: u64) -> String {
    format!(
        "{:0width$}",
        hotp(key, counter_at(unix), DIGITS),
        width = DIGITS as usize
    )
}

/// The step whose code `code` is, among the current one and `window`
/// steps before and after it, skipping steps up to `used` (each step's code
/// works once); `None` when it matches none. Compared in constant time.
pub fn verify(key: &[u8], code: &str, unix: u64, window: u64, used: Option<u64>) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = counter_at(unix);
    let mut found = None;
    for counter in now.saturating_sub(window)..=now + window {
        let expected = format!(
            "{:0width$}",
            hotp(key, counter, DIGITS),
            width = DIGITS as usize
        );
        let fresh = used.is_none_or(|u| counter > u);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh && found.is_none() {
            found = Some(counter);
        }
    }
    found
}

/// Base32 (RFC 4648, no padding needed, case-insensitive), the form
/// authenticator apps show keys in.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| !matches!(c, b'=' | b' ' | b'-')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1u64 << nbits) - 1;
        }
    }
    Some(out)
}

/// Base32 without padding, upper case.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    for &b in bytes {
        bits = (bits << 8) | u64::from(b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            out.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
        bits &= (1u64 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (5 - nbits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_4226_and_6238_vectors() {
        // RFC 4226 appendix D.
        let hotp6 = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in hotp6.iter().enumerate() {
            assert_eq!(hotp(RFC_KEY, counter as u64, 6), *want, "counter {counter}");
        }
        // RFC 6238 appendix B, SHA-1, 8 digits.
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_KEY, counter_at(t), 8), want, "t={t}");
        }
        assert_eq!(code_at(RFC_KEY, 59), "287082");
    }

    #[test]
    fn a_code_works_in_its_window_and_once() {
        let now = 1_111_111_111;
        let code = code_at(RFC_KEY, now);
        let step = counter_at(now);
        assert_eq!(verify(RFC_KEY, &code, now, 1, None), Some(step));
        assert_eq!(
            verify(RFC_KEY, &code, now + 30, 1, None),
            Some(step),
            "the previous step"
        );
        assert_eq!(
            verify(RFC_KEY, &code, now - 30, 1, None),
            Some(step),
            "the next step"
        );
        assert_eq!(
            verify(RFC_KEY, &code, now + 60, 1, None),
            None,
            "two steps late"
        );
        assert_eq!(verify(RFC_KEY, &code, now, 1, Some(step)), None, "used");
        assert_eq!(verify(RFC_KEY, "12345", now, 1, None), None);
        assert_eq!(verify(RFC_KEY, "abcdef", now, 1, None), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify(RFC_KEY, &spaced, now, 1, None), Some(step));
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            base32_decode("gezdgnbvgy3tqojqgezdgnbvgy3tqojq").unwrap(),
            b"12345678901234567890"
        );
        assert!(base32_decode("not base32!").is_none());
        for len in 0..25 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            assert_eq!(base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
        }
    }
}
