//! Input rules shared by the auth endpoints: redirect targets and emails.

use percent_encoding::percent_decode_str;

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

fn looks_local(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() && c != ' ')
        && !s[1..].starts_with(' ')
}

/// Whether `next` is a same-site relative path that no browser could read as
/// another host: `//x`, `\\x`, `/\x`, `\/x`, leading blanks, schemes and
/// their percent-encoded (also double-encoded) forms are refused.
pub fn is_safe_next(next: &str) -> bool {
    let mut current = next.to_owned();
    // Decoding up to three times catches double and triple encoding; a
    // value still changing after that is refused.
    for _ in 0..4 {
        if !looks_local(&current) {
            return false;
        }
        let decoded = match percent_decode_str(&current).decode_utf8() {
            Ok(d) => d.into_owned(),
            Err(_) => return false,
        };
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    false
}

/// The one canonical form of an email, for uniqueness, look-up and
/// throttling, the same whatever the database: trimmed, NFKC (fullwidth
/// letters, composed and decomposed accents alike), fully case-folded
/// (`İ`, `ß`, `Σ` as Unicode folds them, not as SQLite's ASCII-only or
/// PostgreSQL's locale `lower()` does), the domain in IDNA ASCII form.
pub fn canonical_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = email.trim().nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&nfkc).nfkc().collect();
    match folded.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned());
            format!("{local}@{domain}")
        }
        None => folded,
    }
}

/// Trims an email and lower-cases its domain (the local part is kept, as
/// FS's email normaliser does). `None` when it is not a plausible address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    if email.len() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return None;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return None;
    }
    if local.contains(['"', '(', ')', ',', ':', ';', '<', '>', '[', ']', '\\']) {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return None;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) || labels.last()?.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!("{local}@{}", domain.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_rules() {
        for ok in [
            "/",
            "/account",
            "/a/b?c=d&e=%20f",
            "/x%20y",
            "/path with space",
        ] {
            assert!(is_safe_next(ok), "{ok}");
        }
        for bad in [
            "",
            "//x",
            "///x",
            "\\\\x",
            "\\\\\\x",
            "/\\x",
            "\\/x",
            " /x",
            "\t/x",
            "/ /x",
            "javascript:alert(1)",
            "https://x.app",
            "https://x\\.app",
            "http://u@x",
            "x",
            "/%5Cx",
            "%2F%2Fx",
            "/%2Fx",
            "/%252Fx",
            "/%25252F%25252Fx",
            "/x\r\nSet-Cookie:a",
            "/%0d%0aX",
            "/\t/x",
        ] {
            assert!(!is_safe_next(bad), "{bad:?}");
        }
    }

    #[test]
    fn canonical_forms_fold_look_alikes() {
        let c = canonical_email;
        assert_eq!(c(" Ann@Example.COM "), "ann@example.com");
        assert_eq!(c("\u{e9}lodie@x.io"), c("e\u{301}lodie@x.io"));
        assert_eq!(c("\u{c9}LODIE@x.io"), c("\u{e9}lodie@x.io"));
        assert_eq!(c("\u{ff41}nn@x.io"), "ann@x.io");
        assert_eq!(c("k\u{130}m@x.io"), c("ki\u{307}m@x.io"));
        assert_eq!(c("stra\u{df}e@x.io"), c("STRASSE@x.io"));
        assert_eq!(c("a@b\u{fc}cher.example"), "a@xn--bcher-kva.example");
        assert_eq!(c("a@B\u{dc}CHER.example"), c("a@xn--bcher-kva.example"));
        assert_ne!(c("elodie@x.io"), c("\u{e9}lodie@x.io"));
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "Ann@example.com"
        );
        assert!(normalize_email("a@b.co").is_some());
        for bad in [
            "",
            "a",
            "a@",
            "@b.c",
            "a@b",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            "a\r\n@b.c",
            "a@b.123",
            ".a@b.c",
            "a..b@c.d",
            "a@b@c.d",
        ] {
            assert!(normalize_email(bad).is_none(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@b.co", "a".repeat(250))).is_none());
    }
}
