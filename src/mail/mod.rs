//! The outbox worker: claims due mails from the database, renders them
//! (text and HTML, one layout, `templates/mail/`), and sends them over SMTP
//! or writes them as `.eml` files. Each instance runs one; on PostgreSQL the
//! claim skips rows another instance holds, so each mail goes out once. A
//! failed send is retried with a growing delay, up to `mail.max_attempts`.
//!
//! Links are minted when the mail is sent (so a retry carries a fresh one)
//! and start with `security.public_url`, never with a request's Host.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::config::{MailConfig, MailTransport, SecurityConfig, SmtpSecurity};
use crate::core::links::{within_text, Links};
use crate::core::recovery::{kind, Notice};
use crate::core::{validate, SharedClock};
use crate::db::{Db, DbError, OutboxRow, User};
use crate::metrics::{MailOutcome, Metrics};
use crate::Security;

#[derive(rust_embed::Embed)]
#[folder = "templates/mail/"]
struct EmbeddedMail;

/// How long a claimed mail stays ours before another worker may take it
/// over (longer than any SMTP conversation).
const LEASE_SECONDS: i64 = 120;
/// Mails claimed at a time: one, so each send has the whole lease.
const BATCH: i64 = 1;
/// Sent and failed rows are kept this long, then purged.
const KEEP_SECONDS: i64 = 7 * 86_400;

/// Where mails go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

/// A rendered mail, and its link (logged by the file transport).
struct Composed {
    message: Message,
    link: Option<String>,
}

/// What became of one outbox row.
enum Outcome {
    Sent,
    Dropped(&'static str),
    Retry(String),
    Failed(String),
}

/// Everything the worker needs, owned (it outlives any request).
pub struct Outbox {
    db: Db,
    links: Links,
    config: SecurityConfig,
    mail: MailConfig,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    wakeup: Arc<tokio::sync::Notify>,
    templates: minijinja::Environment<'static>,
    transport: Transport,
    from: Mailbox,
}

/// Why the outbox cannot start: one line.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up mail: {0}")]
pub struct MailSetupError(String);

fn templates(template_dir: Option<PathBuf>) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // HTML parts are escaped, text parts are not.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.set_loader(move |name| {
        let file = format!("{name}.j2");
        let local = template_dir
            .as_ref()
            .and_then(|d| std::fs::read(d.join("mail").join(&file)).ok());
        let bytes = match local {
            Some(b) => Some(Cow::Owned(b)),
            None => EmbeddedMail::get(&file).map(|e| e.data),
        };
        match bytes {
            Some(b) => String::from_utf8(b.into_owned()).map(Some).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            }),
            None => Ok(None),
        }
    });
    env
}

fn smtp(mail: &MailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailSetupError> {
    let host = mail.smtp_host.clone().unwrap_or_default();
    let err = |e: lettre::transport::smtp::Error| MailSetupError(format!("SMTP {host}: {e}"));
    let tls = || -> Result<TlsParameters, MailSetupError> {
        let mut builder = TlsParameters::builder(host.clone());
        if let Some(ca) = &mail.smtp_ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| MailSetupError(format!("mail.smtp_ca_file {ca:?}: {e}")))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| MailSetupError(format!("mail.smtp_ca_file {ca:?}: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build().map_err(err)
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(mail.smtp_port())
        .timeout(Some(Duration::from_millis(mail.smtp_timeout_ms.max(1))));
    let builder = match mail.smtp_security {
        SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        SmtpSecurity::None => builder.tls(Tls::None),
    };
    let builder = match (&mail.smtp_username, mail.smtp_password.get()) {
        (Some(user), password) => builder.credentials(Credentials::new(
            user.clone(),
            password
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default(),
        )),
        (None, _) => builder,
    };
    Ok(builder.build())
}

impl Outbox {
    /// The worker for `sec`'s database and mail settings; mail templates
    /// in `template_dir/mail/` override the built-in ones.
    pub fn new(sec: &Security, template_dir: Option<PathBuf>) -> Result<Self, MailSetupError> {
        let transport = match sec.mail.transport() {
            MailTransport::Smtp => Transport::Smtp(smtp(&sec.mail)?),
            MailTransport::File => Transport::File(PathBuf::from(&sec.mail.dir)),
        };
        let from = sec
            .mail
            .from
            .parse()
            .map_err(|e| MailSetupError(format!("mail.from: {e}")))?;
        Ok(Outbox {
            db: sec.db.clone(),
            links: sec.links.clone(),
            config: sec.config.clone(),
            mail: sec.mail.clone(),
            clock: Arc::clone(&sec.clock),
            metrics: Arc::clone(&sec.metrics),
            wakeup: Arc::clone(&sec.mail_wakeup),
            templates: templates(template_dir),
            transport,
            from,
        })
    }

    /// Sends until `shutdown` completes: a pass at once, then one whenever
    /// a request queues a mail here, and every `poll_interval_ms` (mails
    /// other instances queued, retries coming due).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let every = Duration::from_millis(self.mail.poll_interval_ms.max(10));
        let mut purged_at = 0;
        loop {
            match self.pass().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox: database unavailable; will retry"),
            }
            let now = self.clock.unix();
            if now - purged_at > 3_600 {
                purged_at = now;
                if let Err(e) = self.db.purge_outbox(now - KEEP_SECONDS).await {
                    tracing::warn!(error = %e, "outbox: purge failed; will retry");
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Claims and handles due mails until none is left; returns how many
    /// were handled.
    pub async fn pass(&self) -> Result<usize, DbError> {
        let mut handled = 0;
        loop {
            let rows = self
                .db
                .claim_mail(self.clock.unix(), LEASE_SECONDS, BATCH)
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                self.handle(row).await?;
                handled += 1;
            }
        }
        self.metrics.outbox_depth(self.db.outbox_depth().await?);
        Ok(handled)
    }

    async fn handle(&self, row: OutboxRow) -> Result<(), DbError> {
        let outcome = match self.compose(&row).await {
            Ok(Some(mail)) => self.send(&row, mail).await,
            Ok(None) => Outcome::Dropped("no such account, or nothing to do"),
            Err(ComposeError::Db(e)) => Outcome::Retry(format!("database: {e}")),
            Err(ComposeError::Permanent(e)) => Outcome::Failed(e),
        };
        let now = self.clock.unix();
        let held = match outcome {
            Outcome::Sent => {
                self.metrics.mail(MailOutcome::Sent);
                tracing::info!(event = "mail_sent", id = row.id, kind = %row.kind, "mail sent");
                self.db.mail_done(&row, now, None).await?
            }
            Outcome::Dropped(why) => {
                self.metrics.mail(MailOutcome::Dropped);
                tracing::info!(event = "mail_dropped", id = row.id, kind = %row.kind, why, "mail not sent");
                self.db.mail_done(&row, now, Some(why)).await?
            }
            Outcome::Retry(e) if row.attempts < self.mail.max_attempts => {
                self.metrics.mail(MailOutcome::Retried);
                let delay = backoff(row.attempts);
                tracing::warn!(event = "mail_retry", id = row.id, kind = %row.kind,
                    attempts = row.attempts, retry_in = delay, error = %e, "mail not sent; will retry");
                self.db.mail_retry(&row, now + delay, &e).await?
            }
            Outcome::Retry(e) | Outcome::Failed(e) => {
                self.metrics.mail(MailOutcome::Failed);
                tracing::error!(event = "mail_failed", id = row.id, kind = %row.kind,
                    attempts = row.attempts, error = %e, "mail given up");
                self.db.mail_failed(&row, now, &e).await?
            }
        };
        if !held {
            tracing::warn!(
                event = "mail_lease_lost",
                id = row.id,
                "the mail's lease ran out before it was done; another worker owns it now"
            );
        }
        Ok(())
    }

    async fn send(&self, row: &OutboxRow, mail: Composed) -> Outcome {
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send(mail.message).await {
                Ok(_) => Outcome::Sent,
                Err(e) if e.is_permanent() => Outcome::Failed(format!("SMTP: {e}")),
                Err(e) => Outcome::Retry(format!("SMTP: {e}")),
            },
            Transport::File(dir) => {
                let path = dir.join(format!("{}-{}-{}.eml", row.created_at, row.id, row.kind));
                match write_file(dir, &path, &mail.message.formatted()).await {
                    Ok(()) => {
                        // In development the link goes to the log, so a
                        // newcomer can follow it; never in production.
                        if self.mail.log_links {
                            tracing::info!(
                                mail = %path.display(),
                                link = mail.link.as_deref().unwrap_or("-"),
                                "mail written (file transport)"
                            );
                        } else {
                            tracing::info!(mail = %path.display(), "mail written (file transport)");
                        }
                        Outcome::Sent
                    }
                    Err(e) => Outcome::Retry(format!("{}: {e}", path.display())),
                }
            }
        }
    }

    async fn compose(&self, row: &OutboxRow) -> Result<Option<Composed>, ComposeError> {
        let data: Value = serde_json::from_str(&row.data).unwrap_or_else(|_| json!({}));
        let now = self.clock.unix() as u64;
        let base = self.config.public_url.as_deref().unwrap_or("");
        let app = self.mail.app_name.as_str();
        match row.kind.as_str() {
            kind::RESET => {
                let Some(user) = self.user_for(row).await? else {
                    return Ok(None);
                };
                if !user.active {
                    return Ok(None);
                }
                let hashed = user.clone();
                let links = self.links.clone();
                let token = tokio::task::spawn_blocking(move || links.mint_reset(&hashed, now))
                    .await
                    .map_err(|e| ComposeError::Permanent(e.to_string()))?;
                let link = format!("{base}/reset/{token}");
                let ctx = json!({
                    "link": link, "email": user.email, "app_name": app,
                    "within": within_text(self.config.reset_password_within),
                });
                self.render(
                    &user.email,
                    "Password reset instructions",
                    "reset",
                    ctx,
                    Some(link),
                )
                .map(Some)
            }
            kind::CONFIRM => {
                let Some(user) = self.user_for(row).await? else {
                    return Ok(None);
                };
                if self.db.is_confirmed(user.id).await? {
                    return Ok(None);
                }
                let token = self.links.mint_confirm(&user, now);
                let link = format!("{base}/confirm/{token}");
                let welcome = data["welcome"].as_bool().unwrap_or(false);
                let subject = if welcome {
                    "Welcome"
                } else {
                    "Please confirm your email"
                };
                let ctx = json!({
                    "link": link, "email": user.email, "app_name": app, "welcome": welcome,
                    "within": within_text(self.config.confirm_email_within),
                });
                self.render(&user.email, subject, "confirm", ctx, Some(link))
                    .map(Some)
            }
            kind::CHANGE_EMAIL => {
                let Some(user) = self.user_for(row).await? else {
                    return Ok(None);
                };
                let Some(new) = data["new_email"].as_str() else {
                    return Ok(None);
                };
                let token = self.links.mint_change_email(&user, new, now);
                let link = format!("{base}/change-email/{token}");
                let ctx = json!({
                    "link": link, "current_email": user.email, "app_name": app,
                    "within": within_text(self.config.change_email_within),
                });
                self.render(
                    new,
                    "Confirm your new email address",
                    "change_email",
                    ctx,
                    Some(link),
                )
                .map(Some)
            }
            kind::NOTICE => {
                let Some(what) = data["what"].as_str().and_then(Notice::from_name) else {
                    return Err(ComposeError::Permanent(format!(
                        "unknown notice {:?}",
                        data["what"]
                    )));
                };
                let (subject, headline, advice) = notice_text(what, app, base, &data);
                let at = data["at"]
                    .as_i64()
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .and_then(|t| {
                        t.format(time::macros::format_description!(
                            "[year]-[month]-[day] [hour]:[minute]"
                        ))
                        .ok()
                    })
                    .unwrap_or_default();
                let ctx = json!({
                    "headline": headline, "advice": advice, "email": row.recipient,
                    "at": at, "ip": data["ip"], "user_agent": data["user_agent"], "app_name": app,
                });
                self.render(&row.recipient, &subject, "notice", ctx, None)
                    .map(Some)
            }
            other => Err(ComposeError::Permanent(format!(
                "unknown mail kind {other:?}"
            ))),
        }
    }

    /// The account a row is about: by id, or by the address typed.
    async fn user_for(&self, row: &OutboxRow) -> Result<Option<User>, DbError> {
        match row.user_id {
            Some(id) => self.db.user_by_id(id).await,
            None => {
                let key = validate::canonical_email(&row.recipient);
                self.db.user_by_email(&key, row.recipient.trim()).await
            }
        }
    }

    fn render(
        &self,
        to: &str,
        subject: &str,
        template: &str,
        mut ctx: Value,
        link: Option<String>,
    ) -> Result<Composed, ComposeError> {
        ctx["subject"] = Value::from(subject);
        let part = |ext: &str| {
            self.templates
                .get_template(&format!("{template}.{ext}"))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| ComposeError::Permanent(format!("template {template}.{ext}: {e}")))
        };
        let (text, html) = (part("txt")?, part("html")?);
        let to: Mailbox = to
            .parse()
            .map_err(|e| ComposeError::Permanent(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| ComposeError::Permanent(e.to_string()))?;
        Ok(Composed { message, link })
    }
}

enum ComposeError {
    Db(DbError),
    Permanent(String),
}

impl From<DbError> for ComposeError {
    fn from(e: DbError) -> Self {
        ComposeError::Db(e)
    }
}

/// Seconds before attempt `attempts + 1`: 30 s, doubling, at most an hour.
fn backoff(attempts: i32) -> i64 {
    let exp = attempts.clamp(1, 8) - 1;
    (30i64 << exp).min(3_600)
}

async fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Subject, headline and advice of a notice.
fn notice_text(what: Notice, app: &str, base: &str, data: &Value) -> (String, String, String) {
    let reset = format!("{base}/reset");
    match what {
        Notice::PasswordChanged => (
            "Your password has been changed".into(),
            if data["by_admin"].as_bool() == Some(true) {
                format!("An administrator changed the password of your {app} account.")
            } else {
                format!("The password of your {app} account was changed.")
            },
            format!("If it was not you, reset your password now at {reset}: that signs out every session and app that uses your account."),
        ),
        Notice::PasswordReset => (
            "Your password has been reset".into(),
            format!("The password of your {app} account was reset with a link sent to this address."),
            format!("If it was not you, someone can read this mailbox: secure it, then reset your password again at {reset}."),
        ),
        Notice::EmailChanged => (
            "Your email address has been changed".into(),
            format!(
                "The email address of your {app} account was changed to {}. Mails about the account no longer come here.",
                data["new_email"].as_str().unwrap_or("a new address")
            ),
            format!("If it was not you, contact the people who run {app} right away: the account is no longer tied to this address."),
        ),
        Notice::TwoFactorOn => (
            "Two-factor sign-in is on".into(),
            format!("Two-factor sign-in was turned on for your {app} account: signing in now also takes a code from an authenticator app."),
            format!("If it was not you, someone can sign in as you and has tied the account to their phone: reset your password now at {reset} and contact the people who run {app}."),
        ),
        Notice::TwoFactorOff => (
            "Two-factor sign-in is off".into(),
            format!("Two-factor sign-in was turned off for your {app} account: signing in takes the password alone now."),
            format!("If it was not you, reset your password now at {reset}: that signs out every session and app that uses your account, then turn two-factor sign-in on again."),
        ),
        Notice::RecoveryCodeUsed => (
            "A recovery code was used".into(),
            format!("Your {app} account was signed in to with one of its recovery codes instead of a code from the authenticator app. That code is used up."),
            format!("If it was not you, someone has your password and your recovery codes: reset your password now at {reset}, then make a new set of recovery codes."),
        ),
        Notice::TwoFactorRescue => (
            "Two-factor help requested".into(),
            format!(
                "The user {} cannot sign in to {app} with their second factor and asks for help.",
                data["user_email"].as_str().unwrap_or("(unknown)")
            ),
            "Check who is asking before you help: once you are sure, `gatehouse users reset-two-factor EMAIL` turns two-factor sign-in off for the account and signs it out everywhere.".to_owned(),
        ),
        Notice::NewBrowser => (
            "New sign-in to your account".into(),
            format!("Your {app} account was signed in to from a browser it had not seen before."),
            format!("If it was not you, reset your password now at {reset}: that signs out every session and app that uses your account."),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_back_off_to_an_hour() {
        let delays: Vec<i64> = (1..=9).map(super::backoff).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
