//! Flash messages: one line on the next page a browser sees, after a form
//! post redirected it (signed in, password changed, signed out, …).
//!
//! The cookie carries a short code, never text: a cookie set by anyone else
//! (a sibling subdomain, a script) can only pick one of these messages.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;
use serde::Serialize;

use crate::config::SecurityConfig;

const COOKIE: &str = "gh_flash";

/// A result worth telling the user about on the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    /// The login form succeeded.
    SignedIn,
    /// The register form created the account (and signed in).
    Registered,
    /// The change form changed the password.
    PasswordChanged,
    /// The verify form re-authenticated.
    Reauthenticated,
    /// This browser's session ended.
    SignedOut,
    /// Every session and token of the user was revoked.
    SignedOutEverywhere,
    /// A reset link set a new password and signed the user in.
    ResetSignedIn,
    /// A reset link set a new password; the user signs in next.
    ResetDone,
    /// A confirmation link confirmed the email.
    EmailConfirmed,
    /// A confirmation link for an email confirmed before.
    AlreadyConfirmed,
    /// An account was created and must confirm its email first.
    ConfirmationSent,
    /// A change-of-address link changed the email.
    EmailChanged,
    /// Two-factor sign-in was turned on.
    TwoFactorOn,
    /// Two-factor sign-in was turned off.
    TwoFactorOff,
    /// A help request went to the people who run the server.
    RescueSent,
    /// A device was signed out.
    DeviceSignedOut,
    /// Every other device was signed out.
    OthersSignedOut,
    /// A personal access token was revoked.
    TokenRevoked,
}

const ALL: [Flash; 18] = [
    Flash::SignedIn,
    Flash::Registered,
    Flash::PasswordChanged,
    Flash::Reauthenticated,
    Flash::SignedOut,
    Flash::SignedOutEverywhere,
    Flash::ResetSignedIn,
    Flash::ResetDone,
    Flash::EmailConfirmed,
    Flash::AlreadyConfirmed,
    Flash::ConfirmationSent,
    Flash::EmailChanged,
    Flash::TwoFactorOn,
    Flash::TwoFactorOff,
    Flash::RescueSent,
    Flash::DeviceSignedOut,
    Flash::OthersSignedOut,
    Flash::TokenRevoked,
];

/// What a page template gets: `flash.kind` (a CSS class) and `flash.text`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FlashView {
    /// `success` or `info`.
    pub kind: &'static str,
    /// The message.
    pub text: &'static str,
}

impl Flash {
    fn code(self) -> &'static str {
        match self {
            Flash::SignedIn => "signed-in",
            Flash::Registered => "registered",
            Flash::PasswordChanged => "password-changed",
            Flash::Reauthenticated => "reauthenticated",
            Flash::SignedOut => "signed-out",
            Flash::SignedOutEverywhere => "signed-out-everywhere",
            Flash::ResetSignedIn => "reset-signed-in",
            Flash::ResetDone => "reset-done",
            Flash::EmailConfirmed => "email-confirmed",
            Flash::AlreadyConfirmed => "already-confirmed",
            Flash::ConfirmationSent => "confirmation-sent",
            Flash::EmailChanged => "email-changed",
            Flash::TwoFactorOn => "two-factor-on",
            Flash::TwoFactorOff => "two-factor-off",
            Flash::RescueSent => "rescue-sent",
            Flash::DeviceSignedOut => "device-signed-out",
            Flash::OthersSignedOut => "others-signed-out",
            Flash::TokenRevoked => "token-revoked",
        }
    }

    fn from_code(code: &str) -> Option<Flash> {
        ALL.into_iter().find(|f| f.code() == code)
    }

    /// The message shown for this result.
    pub fn view(self) -> FlashView {
        let (kind, text) = match self {
            Flash::SignedIn => ("success", "You are signed in."),
            Flash::Registered => ("success", "Welcome! Your account is ready and you are signed in."),
            // FS's PASSWORD_CHANGE message.
            Flash::PasswordChanged => ("success", "You successfully changed your password."),
            Flash::Reauthenticated => ("success", "Thank you: you have confirmed it is you."),
            Flash::SignedOut => ("info", "You are signed out."),
            Flash::SignedOutEverywhere => (
                "info",
                "You are signed out everywhere: every session and API token of yours has stopped working.",
            ),
            // FS's texts.
            Flash::ResetSignedIn => (
                "success",
                "You successfully reset your password and you have been logged in automatically.",
            ),
            Flash::ResetDone => (
                "success",
                "You successfully reset your password. Please authenticate using your new password.",
            ),
            Flash::EmailConfirmed => ("success", "Thank you. Your email has been confirmed."),
            Flash::AlreadyConfirmed => ("info", "Your email has already been confirmed."),
            Flash::ConfirmationSent => (
                "success",
                "Thank you. Confirmation instructions have been sent to your email: follow the link, then sign in.",
            ),
            Flash::EmailChanged => ("success", "Change of email address confirmed"),
            Flash::TwoFactorOn => (
                "success",
                "Two-factor sign-in is on: signing in now also takes a code from your authenticator app.",
            ),
            // FS's TWO_FACTOR_DISABLED.
            Flash::TwoFactorOff => ("success", "You successfully disabled two factor authorization."),
            Flash::DeviceSignedOut => ("info", "That device is signed out."),
            Flash::OthersSignedOut => ("info", "Every other device is signed out."),
            Flash::TokenRevoked => ("info", "The token is revoked."),
            Flash::RescueSent => (
                "info",
                "Your request for help was sent to the people who run this site: they will contact you.",
            ),
        };
        FlashView { kind, text }
    }
}

/// Leaves `flash` for the next page this browser renders (within a minute).
pub fn set(cookies: &CookieJar<'_>, cfg: &SecurityConfig, flash: Flash) {
    cookies.add(
        Cookie::build((COOKIE, flash.code()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(cfg.cookie_secure)
            .max_age(Duration::minutes(1)),
    );
}

/// The pending message, if any; it is shown once, so the cookie goes.
pub fn take(cookies: &CookieJar<'_>) -> Option<FlashView> {
    let code = cookies.get(COOKIE)?.value().to_owned();
    cookies.remove(Cookie::build(COOKIE).path("/"));
    Flash::from_code(&code).map(Flash::view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_unknown_codes_show_nothing() {
        for f in ALL {
            assert_eq!(Flash::from_code(f.code()), Some(f));
            assert!(!f.view().text.is_empty());
        }
        assert_eq!(Flash::from_code("<script>alert(1)</script>"), None);
        assert_eq!(Flash::from_code(""), None);
    }
}
