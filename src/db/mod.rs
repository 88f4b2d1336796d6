//! Storage: one pool type over SQLite or PostgreSQL, chosen by the URL.
//!
//! Queries are written once, in SQL both engines accept (`$N` placeholders,
//! a quoted `"user"` table), and expanded for each backend by [`with_pool!`].

mod queries;
mod time;

pub use self::queries::*;
pub use self::time::DbTime;

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::config::DatabaseConfig;

/// A connection pool on one of the two supported backends, with the time
/// limit every call gets.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    timeout: Duration,
}

/// The backend's pool.
#[derive(Clone, Debug)]
pub enum Pool {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// For several instances sharing one database.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`, within the
/// database time limit. The body is compiled once per backend, so the same
/// query code serves both.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {{
        let db: &$crate::db::Db = $db;
        match db.pool() {
            $crate::db::Pool::Sqlite($pool) => db.bounded(async { $body }).await,
            $crate::db::Pool::Postgres($pool) => db.bounded(async { $body }).await,
        }
    }};
}
pub(crate) use with_pool;

/// A database failure as the rest of the app sees it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not answer (down, busy, timed out, broken
    /// connection, unexpected error). Always a 503: never a 401 or a 500.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Unavailable(e)
    }
}

/// True when `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// The backend's pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs one database call within the time limit. A call that cannot get
    /// a connection, a lock or an answer in time fails like a dead database
    /// (503), so a hung server never hangs a request.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Opens a pool for `cfg.url`; SQLite files are created when the URL says
    /// `mode=rwc`.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Db, sqlx::Error> {
        let acquire = Duration::from_millis(cfg.timeout_ms.max(1));
        let limit = acquire.as_millis().to_string();
        let idle = Duration::from_secs(cfg.idle_timeout);
        if cfg.url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(&cfg.url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // A locked database waits this long, then the request gets 503.
                .busy_timeout(acquire);
            let pool = PoolOptions::new()
                .max_connections(cfg.max_connections.max(1))
                .min_connections(cfg.min_connections)
                .acquire_timeout(acquire)
                .idle_timeout(idle)
                .connect_with(opts)
                .await?;
            Ok(Db {
                pool: Pool::Sqlite(pool),
                timeout: acquire,
            })
        } else if cfg.url.starts_with("postgres:") || cfg.url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(&cfg.url)?
                // A hung statement must not hold a request past the 503 budget.
                .options([
                    ("statement_timeout", limit.as_str()),
                    ("lock_timeout", limit.as_str()),
                ]);
            let pool = PoolOptions::new()
                .max_connections(cfg.max_connections.max(1))
                .min_connections(cfg.min_connections)
                .acquire_timeout(acquire)
                .idle_timeout(idle)
                .connect_with(opts)
                .await?;
            Ok(Db {
                pool: Pool::Postgres(pool),
                timeout: acquire,
            })
        } else {
            Err(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL {:?}: use sqlite://… or postgres://…",
                    redact_url(&cfg.url)
                )
                .into(),
            ))
        }
    }

    /// Applies gatehouse's migrations. They only add to the tables that
    /// Flask-Security-Too creates, so an FS database opens unchanged.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Which backend this is, for logs.
    pub fn backend(&self) -> &'static str {
        match &self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }
}

/// A database URL with any password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
