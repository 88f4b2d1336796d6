//! Storage: one pool type over SQLite or PostgreSQL, chosen by the URL.
//!
//! Queries are written once, in SQL both engines accept (`$N` placeholders,
//! a quoted `"user"` table), and expanded for each backend by [`with_pool!`].

mod devices;
mod outbox;
mod queries;
mod time;

pub use self::devices::*;
pub use self::outbox::*;
pub use self::queries::*;
pub use self::time::DbTime;

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::config::DatabaseConfig;
use crate::metrics::{DbOutcome, Metrics, PoolState};

/// A connection pool on one of the two supported backends, with the time
/// limit every call gets.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    timeout: Duration,
    /// SQLite only: see [`Readers`].
    readers: Option<std::sync::Arc<Readers>>,
    /// Where call latencies are counted, once the server has attached it.
    metrics: Option<std::sync::Arc<Metrics>>,
}

/// SQLite only: a few connections kept outside the pool for the lookup that
/// every authenticated request makes. sqlx's pool pings each connection it
/// takes back (a round trip to the connection's worker thread), which for
/// that lookup cost as much as the query itself (profiled, bench/RESULTS.md).
/// In WAL mode a reader sees every committed write, so a revocation is
/// visible to the very next lookup.
#[derive(Debug)]
pub struct Readers {
    conns: Vec<tokio::sync::Mutex<sqlx::SqliteConnection>>,
    next: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    async fn open(opts: &SqliteConnectOptions, n: usize) -> Result<Readers, sqlx::Error> {
        use sqlx::ConnectOptions;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(tokio::sync::Mutex::new(opts.connect().await?));
        }
        Ok(Readers {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A reader connection, round robin; an error once the Db is closed.
    pub(crate) async fn get(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, sqlx::SqliteConnection>, sqlx::Error> {
        use std::sync::atomic::Ordering;
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        Ok(self.conns[i].lock().await)
    }
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

/// Like [`with_pool!`] for the per-request lookups: on SQLite `$exec` is one
/// of the dedicated [`Readers`], elsewhere the pool.
macro_rules! with_reader {
    ($db:expr, $exec:ident => $body:expr) => {{
        let db: &$crate::db::Db = $db;
        match db.readers() {
            Some(readers) => {
                db.bounded(async {
                    let mut conn = readers.get().await?;
                    let $exec = &mut *conn;
                    $body
                })
                .await
            }
            None => $crate::db::with_pool!(db, $exec => $body),
        }
    }};
}
pub(crate) use with_reader;

/// A database failure as the rest of the app sees it, graded by what the
/// caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not answer now (down, busy or locked, timed out,
    /// broken connection, out of resources): worth a retry. A 503, never a
    /// 401 or a 500.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A unique index refused the write: the value is already taken.
    /// Callers that expect it map it to its meaning (an email in use).
    #[error("already exists: {0}")]
    AlreadyExists(#[source] sqlx::Error),
    /// Another constraint refused the write (foreign key, not null, check).
    #[error("constraint violated: {0}")]
    Constraint(#[source] sqlx::Error),
    /// Anything else: a bug or a schema that is not what gatehouse expects.
    /// A 500 whose cause is logged, never shown.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match grade(&e) {
            Grade::Unavailable => DbError::Unavailable(e),
            Grade::Constraint if matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation()) => {
                DbError::AlreadyExists(e)
            }
            Grade::Constraint => DbError::Constraint(e),
            Grade::Other => DbError::Other(e),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Grade {
    Unavailable,
    Constraint,
    Other,
}

/// Sorts an sqlx error. Transport and pool trouble is transient; so are the
/// database's own "busy, locked, shutting down, out of resources, cancelled
/// by a timeout" answers (SQLite result codes; PostgreSQL SQLSTATE classes
/// 08, 40, 53, 57, 58 and 55P03). Constraint codes are constraints;
/// everything else (syntax, missing table or column, decoding) is a bug.
fn grade(e: &sqlx::Error) -> Grade {
    use sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed => Grade::Unavailable,
        E::Database(d) => {
            if d.is_unique_violation()
                || d.is_foreign_key_violation()
                || d.is_check_violation()
                || matches!(d.kind(), sqlx::error::ErrorKind::NotNullViolation)
            {
                return Grade::Constraint;
            }
            grade_code(d.code().as_deref().unwrap_or(""))
        }
        _ => Grade::Other,
    }
}

fn grade_code(code: &str) -> Grade {
    // A PostgreSQL SQLSTATE has five characters (often all digits); a
    // SQLite result code is a number of at most four digits.
    if let (true, Ok(n)) = (code.len() < 5, code.parse::<u32>()) {
        // SQLite: the primary result code is the low byte of the extended one.
        // BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, INTERRUPT 9, IOERR 10,
        // FULL 13, CANTOPEN 14, PROTOCOL 15.
        return match n & 0xff {
            5..=10 | 13..=15 => Grade::Unavailable,
            _ => Grade::Other,
        };
    }
    match code.get(..2) {
        Some("08" | "40" | "53" | "57" | "58") => Grade::Unavailable,
        // lock_not_available; read_only_sql_transaction (a failover).
        _ if code == "55P03" || code == "25006" => Grade::Unavailable,
        _ => Grade::Other,
    }
}

/// The pool settings both backends share.
fn pool_options<DB: sqlx::Database>(
    cfg: &DatabaseConfig,
    acquire: Duration,
    idle: Duration,
) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(cfg.max_connections.max(1))
        .min_connections(cfg.min_connections)
        .acquire_timeout(acquire)
        .idle_timeout(idle)
        // sqlx pings a connection before every acquire by default: a round
        // trip on every query (for SQLite a handoff to the connection's
        // worker thread; profiled, see bench/RESULTS.md). A local SQLite
        // file cannot die unnoticed; a PostgreSQL connection that died
        // (restart, killed backend) fails its next query once, as a 503,
        // and is replaced.
        .test_before_acquire(false)
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// The backend's pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The SQLite readers, when this is SQLite.
    pub(crate) fn readers(&self) -> Option<&Readers> {
        self.readers.as_deref()
    }

    /// Runs one database call within the time limit. A call that cannot get
    /// a connection, a lock or an answer in time fails like a dead database
    /// (503), so a hung server never hangs a request.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let start = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, call).await;
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(Ok(_)) => DbOutcome::Ok,
                Err(_) | Ok(Err(sqlx::Error::PoolTimedOut)) => DbOutcome::Timeout,
                Ok(Err(_)) => DbOutcome::Error,
            };
            m.db_call(outcome, start.elapsed().as_secs_f64());
        }
        result.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// This pool counting its calls' latency in `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The pool's connections now, for the metrics.
    pub fn pool_state(&self) -> PoolState {
        let (open, idle, max) = match &self.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
            Pool::Postgres(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
        };
        PoolState {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
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
            let pool = pool_options(cfg, acquire, idle)
                .connect_with(opts.clone())
                .await?;
            let readers = Readers::open(&opts, 4).await?;
            Ok(Db {
                pool: Pool::Sqlite(pool),
                timeout: acquire,
                readers: Some(std::sync::Arc::new(readers)),
                metrics: None,
            })
        } else if cfg.url.starts_with("postgres:") || cfg.url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(&cfg.url)?
                // A hung statement must not hold a request past the 503 budget.
                .options([
                    ("statement_timeout", limit.as_str()),
                    ("lock_timeout", limit.as_str()),
                ]);
            let pool = pool_options(cfg, acquire, idle).connect_with(opts).await?;
            Ok(Db {
                pool: Pool::Postgres(pool),
                timeout: acquire,
                readers: None,
                metrics: None,
            })
        } else {
            Err(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL {:?}: use sqlite://… or postgres://…",
                    crate::config::redact_url(&cfg.url)
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
        if let Some(r) = &self.readers {
            r.closed.store(true, std::sync::atomic::Ordering::Release);
        }
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

#[cfg(test)]
mod tests {
    use super::{grade, grade_code, Grade};

    #[test]
    fn transient_trouble_is_unavailable_and_bugs_are_not() {
        assert_eq!(grade(&sqlx::Error::PoolTimedOut), Grade::Unavailable);
        assert_eq!(grade(&sqlx::Error::PoolClosed), Grade::Unavailable);
        assert_eq!(
            grade(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())),
            Grade::Unavailable
        );
        assert_eq!(grade(&sqlx::Error::RowNotFound), Grade::Other);
        assert_eq!(
            grade(&sqlx::Error::ColumnNotFound("x".into())),
            Grade::Other
        );
        // SQLite: BUSY, LOCKED, BUSY_SNAPSHOT (517), IOERR_READ (266), FULL.
        for code in ["5", "6", "517", "266", "13"] {
            assert_eq!(grade_code(code), Grade::Unavailable, "{code}");
        }
        // SQLite: ERROR (no such table, syntax), MISMATCH.
        for code in ["1", "20"] {
            assert_eq!(grade_code(code), Grade::Other, "{code}");
        }
        // PostgreSQL: connection failure, admin shutdown, statement timeout,
        // serialization failure, lock timeout, too many connections.
        for code in [
            "08006", "57P01", "57014", "40001", "55P03", "53300", "25006",
        ] {
            assert_eq!(grade_code(code), Grade::Unavailable, "{code}");
        }
        // PostgreSQL: undefined table, undefined column, syntax error.
        for code in ["42P01", "42703", "42601"] {
            assert_eq!(grade_code(code), Grade::Other, "{code}");
        }
    }
}
