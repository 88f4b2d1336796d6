//! The Rocket adapters: guards (who is asking, and the CSRF rule), thin
//! handlers over the core's flows, the one mapping of errors to status and
//! envelope or page, templates, fairings. [`rocket`] composes them into the
//! auth server.

pub mod assets;
pub mod change;
pub mod client_ip;
pub mod cookies;
pub mod credentials;
pub mod devices;
pub mod envelope;
pub mod error;
pub mod flash;
pub mod forward;
pub mod guards;
pub mod headers;
pub mod health;
pub mod input;
pub mod introspect;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod pages;
pub mod recovery;
pub mod register;
pub mod twofactor;
pub mod verify;

use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{catchers, Build, Rocket};

use crate::config::{ConfigError, DatabaseConfig, SecurityConfig};
use crate::core::{Security, SharedClock, SystemClock};
use crate::db::Db;

/// Why the server cannot start: one operator-readable line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database cannot be opened.
    #[error("cannot open database {url}: {cause}")]
    Open {
        /// The URL, password redacted.
        url: String,
        /// Why.
        cause: sqlx::Error,
    },
    /// The migrations failed.
    #[error("cannot migrate database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The accounts Flask-Security wrote could not be keyed.
    #[error("cannot key the accounts' emails: {0}")]
    KeyEmails(crate::core::CoreError),
    /// The hash timing calibration could not read the database or hash.
    #[error("cannot calibrate password checks: {0}")]
    Calibrate(crate::core::CoreError),
    /// The mail transport cannot be set up (a CA file, a bad From).
    #[error(transparent)]
    Mail(#[from] crate::mail::MailSetupError),
}

/// Reads the configuration, opens and migrates the database, and builds the
/// core, on the given clock.
pub async fn build_state(figment: &Figment, clock: SharedClock) -> Result<Security, StartError> {
    crate::config::check_rocket_secret(figment)?;
    let mut config = SecurityConfig::from_figment(figment)?;
    config.resolve_public_url(figment)?;
    let mail = crate::config::MailConfig::from_figment(figment, config.sends_mail())?;
    let db_config = DatabaseConfig::from_figment(figment)?;
    let db = Db::connect(&db_config)
        .await
        .map_err(|cause| StartError::Open {
            url: crate::config::redact_url(&db_config.url),
            cause,
        })?;
    db.migrate().await?;
    let mut sec = Security::new(config, db, clock)?;
    sec.mail = mail;
    // The outbox's transport is set up now, so a bad one stops the start.
    crate::mail::Outbox::new(&sec, template_dir(figment))?;
    sec.key_emails().await.map_err(StartError::KeyEmails)?;
    sec.calibrate().await.map_err(StartError::Calibrate)?;
    Ok(sec)
}

/// The fairing that builds [`Security`] at ignite (failing ignite, with the
/// reason logged, on a bad configuration) and runs housekeeping in the
/// background until shutdown.
///
/// The pool is not closed by a shutdown fairing: Rocket runs those at the
/// start of shutdown, while in-flight requests still need the database.
/// Close it once `launch()` has returned (see [`close`]).
pub fn fairing(clock: SharedClock) -> AdHoc {
    AdHoc::try_on_ignite("gatehouse", |rocket| async move {
        match build_state(rocket.figment(), clock).await {
            Ok(state) => {
                tracing::info!(backend = state.db.backend(), "gatehouse ready");
                Ok(rocket.manage(state).attach(housekeeping()).attach(outbox()))
            }
            Err(reason) => {
                tracing::error!("gatehouse cannot start: {reason}");
                Err(rocket)
            }
        }
    })
}

/// Purges expired sessions and throttle rows every
/// `security.housekeeping_interval` seconds, off the request path.
fn housekeeping() -> AdHoc {
    AdHoc::on_liftoff("housekeeping", |rocket| {
        Box::pin(async move {
            let Some(sec) = rocket.state::<Security>() else {
                return;
            };
            let (db, clock) = (sec.db.clone(), Arc::clone(&sec.clock));
            let window = sec.throttle_window();
            let every = std::time::Duration::from_secs(sec.config.housekeeping_interval);
            let shutdown = rocket.shutdown();
            tokio::spawn(async move {
                tokio::pin!(shutdown);
                loop {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    match crate::core::housekeeping(&db, clock.unix(), window).await {
                        Ok((sessions, throttle)) => {
                            tracing::debug!(sessions, throttle, "housekeeping: expired rows purged")
                        }
                        Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
                    }
                }
            });
        })
    })
}

fn template_dir(figment: &Figment) -> Option<std::path::PathBuf> {
    figment.extract_inner("template_dir").ok()
}

/// Runs this instance's outbox worker (see [`crate::mail`]) until shutdown.
fn outbox() -> AdHoc {
    AdHoc::on_liftoff("outbox", |rocket| {
        Box::pin(async move {
            let Some(sec) = rocket.state::<Security>() else {
                return;
            };
            match crate::mail::Outbox::new(sec, template_dir(rocket.figment())) {
                Ok(outbox) => {
                    tokio::spawn(outbox.run(rocket.shutdown()));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the outbox cannot start: no mail will be sent")
                }
            }
        })
    })
}

/// Closes the database pool of a Rocket that has finished serving (after
/// `launch()` returned, so every in-flight request had its grace period).
pub async fn close<P: rocket::Phase>(rocket: &Rocket<P>) {
    if let Some(sec) = rocket.state::<Security>() {
        sec.db.close().await;
    }
}

/// The full auth server on the system clock: state, templates, auth routes,
/// static files and the catcher. Mount your own routes on it.
pub fn rocket(figment: Figment) -> Rocket<Build> {
    rocket_with_clock(figment, Arc::new(SystemClock))
}

/// [`rocket`] on a given clock (tests move a [`crate::core::ManualClock`]).
pub fn rocket_with_clock(figment: Figment, clock: SharedClock) -> Rocket<Build> {
    base(figment)
        .attach(assets::fairing())
        .attach(fairing(clock))
}

/// The auth server on a state and assets built beforehand: the binary
/// builds them first, so that a start-up problem is one line with its
/// reason, before Rocket starts.
pub fn rocket_with_state(
    figment: Figment,
    state: Security,
    assets: assets::Assets,
) -> Rocket<Build> {
    base(figment)
        .manage(state)
        .manage(assets)
        .attach(housekeeping())
        .attach(outbox())
}

fn base(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        // Rocket's default Shield sets two of the headers SecurityHeaders
        // sets (one of them weaker) and a FLoC opt-out no browser reads; an
        // empty one turns it off: three header writes less on every response.
        .attach(rocket::shield::Shield::new())
        .attach(logging::RequestLog)
        .attach(headers::SecurityHeaders)
        .mount("/", routes())
        .register("/", catchers![error::default_catcher])
}

/// Every route of the auth server.
pub fn routes() -> Vec<rocket::Route> {
    let mut r = Vec::new();
    r.extend(login::routes());
    r.extend(register::routes());
    r.extend(change::routes());
    r.extend(pages::routes());
    r.extend(health::routes());
    r.extend(verify::routes());
    r.extend(assets::routes());
    r.extend(forward::routes());
    r.extend(introspect::routes());
    r.extend(metrics::routes());
    r.extend(openapi::routes());
    r.extend(recovery::routes());
    r.extend(twofactor::routes());
    r.extend(devices::routes());
    r
}
