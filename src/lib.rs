//! gatehouse: an authentication and session server that speaks
//! Flask-Security-Too's wire format, on Rocket.
//!
//! [`rocket`] builds a ready app from a Figment; the pieces (guards, routes,
//! catchers) can also be attached to another Rocket app.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod headers;
pub mod input;
pub mod logging;
pub mod response;
pub mod routes;
pub mod validate;

pub use auth::Security;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::fs::FileServer;
use rocket::{catchers, Build, Rocket};
use rocket_dyn_templates::Template;

use auth::password::Hasher;
use auth::token::TokenSigner;
use config::{DatabaseConfig, SecurityConfig};
use db::Db;

/// Reads the configuration, opens and migrates the database, and builds the
/// shared state. Errors are one-line, operator-readable reasons.
pub async fn build_state(figment: &Figment) -> Result<Security, String> {
    let config = SecurityConfig::from_figment(figment).map_err(|e| e.to_string())?;
    let db_config = DatabaseConfig::from_figment(figment).map_err(|e| e.to_string())?;
    let db = Db::connect(&db_config).await.map_err(|e| {
        format!(
            "cannot open database {}: {e}",
            db::redact_url(&db_config.url)
        )
    })?;
    db.migrate()
        .await
        .map_err(|e| format!("cannot migrate database: {e}"))?;
    let hasher = Hasher::new(
        config.password_salt.clone(),
        config.bcrypt_cost,
        config.hash_slots,
        config.hash_admission,
    )
    .map_err(|e| e.to_string())?;
    let signer = TokenSigner::new(&config.secret_key, &config.token_salt);
    let ip_limiter = auth::ip_limiter(config.ip_limit_per_minute);
    Ok(Security {
        config,
        db,
        hasher,
        signer,
        ip_limiter,
        throttle_calls: Default::default(),
    })
}

/// The fairing that builds [`Security`] at ignite. Ignite fails, with the
/// reason logged, on a bad configuration.
///
/// The pool is not closed by a shutdown fairing: Rocket runs those at the
/// start of shutdown, while in-flight requests still need the database.
/// Close it once `launch()` has returned (see [`close`]).
pub fn fairing() -> AdHoc {
    AdHoc::try_on_ignite("gatehouse", |rocket| async move {
        match build_state(rocket.figment()).await {
            Ok(state) => {
                tracing::info!(backend = state.db.backend(), "gatehouse ready");
                Ok(rocket.manage(state))
            }
            Err(reason) => {
                tracing::error!("gatehouse cannot start: {reason}");
                Err(rocket)
            }
        }
    })
}

/// Closes the database pool of a Rocket that has finished serving (after
/// `launch()` returned, so every in-flight request had its grace period).
pub async fn close<P: rocket::Phase>(rocket: &Rocket<P>) {
    if let Some(sec) = rocket.state::<Security>() {
        sec.db.close().await;
    }
}

/// Where the static files are (`static_dir`, by default `static`); managed.
pub struct StaticDir(pub std::path::PathBuf);

/// The full auth server: state, templates, auth routes, static files and
/// the catcher. Mount your own routes (or [`routes::api::routes`]) on it.
pub fn rocket(figment: Figment) -> Rocket<Build> {
    let static_dir: std::path::PathBuf = figment
        .extract_inner::<String>("static_dir")
        .unwrap_or_else(|_| "static".into())
        .into();
    rocket::custom(figment)
        .attach(fairing())
        .attach(logging::RequestLog)
        .attach(headers::SecurityHeaders)
        .attach(Template::fairing())
        .mount("/", routes::routes())
        .mount("/static", FileServer::from(&static_dir))
        .manage(StaticDir(static_dir))
        .register("/", catchers![error::default_catcher])
}
