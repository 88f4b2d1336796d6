//! The core's errors and the exact Flask-Security message texts. No HTTP
//! here: the adapters map each variant to a status and a body in one place.

/// Exact FS message texts (WIRE.md §1).
pub mod msg {
    #![allow(missing_docs)]
    pub const UNAUTHENTICATED: &str = "You must sign in to view this resource.";
    pub const UNAUTHORIZED: &str = "You do not have permission to view this resource.";
    pub const LOGIN_FAILED: &str = "Authentication failed - identity or password/passcode invalid";
    pub const EMAIL_MISSING: &str = "Email not provided";
    pub const PASSWORD_MISSING: &str = "Password not provided";
    pub const BAD_EMAIL: &str = "Invalid email address";
    pub const SHORT_PASSWORD: &str = "Password must be at least 8 characters";
    pub const LONG_PASSWORD: &str = "Password must be at most 128 characters";
    pub const CONFIRM_MISMATCH: &str = "Passwords do not match";
    pub const SAME_PASSWORD: &str =
        "Your new password must be different than your previous password.";
    pub const WRONG_PASSWORD: &str = "Invalid password";
    pub const DISABLED: &str = "Account is disabled.";
    pub const TWO_FACTOR_UNSUPPORTED: &str =
        "This account requires two-factor sign-in, which this server does not offer yet.";
    pub const ANONYMOUS_ONLY: &str = "You can only access this endpoint when not logged in.";
    pub const NOT_A_STRING: &str = "Input not appropriate for requested API";
    pub const BAD_REDIRECT: &str = "Redirections outside the domain are forbidden";
    pub const CSRF_MISSING: &str = "The CSRF token is missing.";
    pub const CSRF_INVALID: &str = "The CSRF token is invalid.";
    pub const CROSS_SITE: &str = "Cross-site request refused.";
    pub const CONFIRMATION_REQUIRED: &str = "Email requires confirmation.";
    pub const ALREADY_CONFIRMED: &str = "Your email has already been confirmed.";
    pub const INVALID_CODE: &str = "Invalid code";
    pub const INVALID_RECOVERY_CODE: &str = "Recovery code invalid";
    pub const ENROL_FIRST: &str = "Your account must use two-factor sign-in: set up an authenticator app to finish signing in.";
    pub const NO_CODE_EXPECTED: &str = "You currently do not have permissions to access this page";
    pub const REAUTH_REQUIRED: &str = "You must reauthenticate to access this endpoint";
    pub fn email_taken(email: &str) -> String {
        format!("{email} is already associated with an account.")
    }
}

/// Validation errors in field order; the field `""` is form-level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    /// Adds an error for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// One error.
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut e = FieldErrors::default();
        e.add(field, message);
        e
    }

    /// No errors at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    /// `field -> [messages]`, for templates and `response.field_errors`.
    pub fn by_field(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        for (f, m) in &self.0 {
            if let serde_json::Value::Array(list) = map
                .entry(f.clone())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            {
                list.push(serde_json::Value::from(m.clone()));
            }
        }
        map
    }

    /// The flat list of messages, in field order.
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(|(_, m)| m.clone()).collect()
    }

    /// `Err(self)` when there is an error, as a [`CoreError::Validation`].
    pub fn into_result(self) -> Result<(), CoreError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Validation(self))
        }
    }
}

/// Why an auth flow did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// Unknown email or wrong password: indistinguishable on purpose.
    #[error("wrong credentials")]
    WrongCredentials,
    /// Right password, inactive account.
    #[error("account disabled")]
    Disabled,
    /// Right password, but the account enrolled in FS two-factor sign-in,
    /// which gatehouse does not serve yet: refused rather than downgraded.
    #[error("two-factor sign-in required")]
    TwoFactorRequired,
    /// A signed-in user's re-entered password is wrong (change, verify).
    #[error("wrong password")]
    WrongPassword,
    /// The input breaks a rule; messages per field.
    #[error("validation failed: {0:?}")]
    Validation(FieldErrors),
    /// Too many attempts: retry in this many seconds.
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// Every password hashing slot stayed busy.
    #[error("password hashing is overloaded")]
    Busy,
    /// The database could not answer now; the cause is for the log.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A link from a mail (reset, confirm, change of address) that does not
    /// work; `message` says why, in FS's words.
    #[error("link refused: {message}")]
    Link {
        /// Which link.
        kind: super::links::LinkKind,
        /// Invalid or expired.
        problem: super::links::LinkProblem,
        /// What the user is told.
        message: String,
    },
    /// Right password of an account with an authenticator: the sign-in goes
    /// on with a code (`uid` is its fs_uniquifier).
    #[error("two-factor code required")]
    CodeRequired {
        /// The account's fs_uniquifier.
        uid: String,
    },
    /// A two-factor code that is wrong, used, or out of its window.
    #[error("invalid two-factor code")]
    InvalidCode,
    /// A refresh token that does not work (FS's reasons).
    #[error("refresh token refused: {0:?}")]
    RefreshRefused(super::refresh::RefreshProblem),
    /// A recovery code that is wrong or used up.
    #[error("invalid recovery code")]
    InvalidRecoveryCode,
    /// Right password of an account whose roles require two-factor
    /// sign-in, which it does not have yet: the sign-in goes on with
    /// enrolment (`uid` is its fs_uniquifier).
    #[error("two-factor enrolment required")]
    EnrolRequired {
        /// The account's fs_uniquifier.
        uid: String,
    },
    /// No two-factor sign-in is waiting (none, or its time ran out).
    #[error("no two-factor sign-in in progress")]
    NoCodeExpected,
    /// Right password, but the email is not confirmed yet.
    #[error("email confirmation required")]
    ConfirmationRequired,
    /// The user the caller acted as is gone (deleted, rotated away).
    #[error("no such user")]
    NoSuchUser,
    /// A bug; the cause is for the log, never for the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// The field errors a form shows for this outcome, when it is one a form
    /// shows (wrong credentials, validation), else `None`.
    pub fn field_errors(&self) -> Option<FieldErrors> {
        Some(match self {
            CoreError::WrongCredentials => FieldErrors::one("", msg::LOGIN_FAILED),
            CoreError::Disabled => FieldErrors::one("email", msg::DISABLED),
            CoreError::TwoFactorRequired => FieldErrors::one("", msg::TWO_FACTOR_UNSUPPORTED),
            CoreError::WrongPassword => FieldErrors::one("password", msg::WRONG_PASSWORD),
            CoreError::Link { message, .. } => FieldErrors::one("", message.clone()),
            CoreError::CodeRequired { .. } => FieldErrors::one("", msg::TWO_FACTOR_UNSUPPORTED),
            CoreError::InvalidCode => FieldErrors::one("code", msg::INVALID_CODE),
            CoreError::RefreshRefused(p) => FieldErrors::one("refresh_token", p.message()),
            CoreError::InvalidRecoveryCode => FieldErrors::one("code", msg::INVALID_RECOVERY_CODE),
            CoreError::EnrolRequired { .. } => FieldErrors::one("", msg::ENROL_FIRST),
            CoreError::NoCodeExpected => FieldErrors::one("", msg::NO_CODE_EXPECTED),
            CoreError::ConfirmationRequired => {
                FieldErrors::one("email", msg::CONFIRMATION_REQUIRED)
            }
            CoreError::Validation(f) => f.clone(),
            _ => return None,
        })
    }
}

impl From<crate::db::DbError> for CoreError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Unavailable(_) => CoreError::Unavailable(e.to_string()),
            // A constraint a flow did not expect is a bug in that flow.
            DbError::AlreadyExists(_) | DbError::Constraint(_) | DbError::Other(_) => {
                CoreError::Internal(e.to_string())
            }
        }
    }
}

impl From<super::password::HashError> for CoreError {
    fn from(e: super::password::HashError) -> Self {
        match e {
            super::password::HashError::Busy => CoreError::Busy,
            super::password::HashError::Internal(c) => CoreError::Internal(c),
        }
    }
}
