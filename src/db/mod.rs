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
    /// SQLite only: see [`Direct`].
    direct: Option<std::sync::Arc<Direct>>,
    /// Where call latencies are counted, once the server has attached it.
    metrics: Option<std::sync::Arc<Metrics>>,
}

/// SQLite only: a few connections outside sqlx, used on the request's own
/// thread. sqlx's SQLite driver runs each query on its connection's worker
/// thread, and the handoff there and back cost more than the query
/// (profiled, bench/PROFILE.md). Readers serve the lookups that every
/// authenticated request makes (an indexed read of a few microseconds);
/// the writer serves short writes on hot paths (a session's or device's
/// last use, the demo's likes).
///
/// In WAL mode a reader never waits for a writer and sees every committed
/// write, so a revocation is visible to the very next lookup. Nothing here
/// waits on the database: a call that cannot run at once (every reader in
/// use, the database busy or locked, any error at all) returns `None`, and the caller
/// asks the pool, within the time limit, and gets its answer or its error
/// (a 503) as any query does. So this can make a call faster, never change
/// its answer. A write that fails here rolled back (its own transaction), so
/// the pool's retry does not apply it twice.
///
/// Rare waits remain on the request's thread: a page not in the OS cache is
/// read from disk, and SQLite retries a WAL read that races a checkpoint a
/// few times before it gives up.
///
/// The queries are the pool's SQL texts. rusqlite binds a tuple by position,
/// and SQLite numbers `$N` parameters in the order they first appear: a
/// query whose `$1`, `$2`, … do not appear in that order binds by name
/// (`named_params!`).
#[derive(Debug)]
pub struct Direct {
    readers: Vec<std::sync::Mutex<rusqlite::Connection>>,
    writer: std::sync::Mutex<rusqlite::Connection>,
    /// Commits by `writer` since the last checkpoint (see [`Direct::write`]).
    commits: std::sync::atomic::AtomicU32,
    next: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
}

/// The writer's commits between two WAL checkpoints: about SQLite's own
/// 1000-page threshold for writes of a page or two.
const CHECKPOINT_EVERY: u32 = 500;

impl Direct {
    fn open(path: &std::path::Path, readers: usize) -> Result<Direct, rusqlite::Error> {
        use rusqlite::OpenFlags as F;
        let open = || -> Result<rusqlite::Connection, rusqlite::Error> {
            // Read-write without create: the pool made the file and put it in
            // WAL mode; a reader may need to write the WAL index.
            let conn = rusqlite::Connection::open_with_flags(
                path,
                F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX,
            )?;
            // Never wait on the request's thread: busy goes to the pool.
            conn.busy_timeout(Duration::ZERO)?;
            Ok(conn)
        };
        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers {
            let conn = open()?;
            conn.pragma_update(None, "query_only", true)?;
            // The lookups touch a few index pages; the OS caches the file.
            // (SQLite's default, 2 MB a connection, is a tenth of gatehouse's
            // memory for five connections.)
            conn.pragma_update(None, "cache_size", -256)?;
            conns.push(std::sync::Mutex::new(conn));
        }
        let writer = open()?;
        // As the pool's connections: no fsync on commit (WAL), foreign keys
        // enforced. No checkpoint on the request's thread: the writer asks
        // the pool for one every CHECKPOINT_EVERY commits.
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "foreign_keys", true)?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "cache_size", -512)?;
        Ok(Direct {
            readers: conns,
            writer: std::sync::Mutex::new(writer),
            commits: std::sync::atomic::AtomicU32::new(0),
            next: std::sync::atomic::AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn run<T>(
        conn: &rusqlite::Connection,
        call: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        match call(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "direct call failed; the pool answers");
                None
            }
        }
    }

    /// Runs `read` on a free reader now.
    fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        use std::sync::atomic::Ordering;
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let n = self.readers.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = (0..n).find_map(|i| self.readers[(first + i) % n].try_lock().ok())?;
        Self::run(&conn, read)
    }

    /// Runs `write` on the writer, in a transaction; true in the second
    /// place when a checkpoint is due.
    fn write<T>(
        &self,
        write: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<(T, bool)> {
        use std::sync::atomic::Ordering;
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let conn = self.writer.try_lock().ok()?;
        // In a transaction of its own: whatever fails before the commit
        // succeeded (the statement, reading what it returned, the commit)
        // leaves nothing written, so the pool's retry cannot apply it twice.
        // (In autocommit, `INSERT … RETURNING` commits when the statement is
        // reset, after its rows were read, and a failed commit goes unseen.)
        let done = Self::run(&conn, |c| {
            let tx = c.unchecked_transaction()?;
            let done = write(&tx)?;
            tx.commit()?;
            Ok(done)
        })?;
        let commits = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let due = commits.is_multiple_of(CHECKPOINT_EVERY);
        Some((done, due))
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

    /// Runs a per-request lookup on a SQLite [`Direct`] reader, at once:
    /// `None` when this is not SQLite or no reader can answer now, and the
    /// caller asks the pool.
    pub(crate) fn read_now<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let direct = self.direct.as_deref()?;
        let start = std::time::Instant::now();
        let found = direct.read(read)?;
        self.count_direct(start);
        Some(found)
    }

    /// Runs a short write on the SQLite [`Direct`] writer, in a transaction
    /// of its own, at once: `None` when this is not SQLite or the writer
    /// cannot run it now (nothing was written), and the caller asks the pool.
    pub(crate) fn write_now<T>(
        &self,
        write: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let direct = self.direct.as_deref()?;
        let start = std::time::Instant::now();
        let (done, checkpoint) = direct.write(write)?;
        self.count_direct(start);
        if checkpoint {
            self.checkpoint_later();
        }
        Some(done)
    }

    fn count_direct(&self, start: std::time::Instant) {
        if let Some(m) = &self.metrics {
            m.db_call(DbOutcome::Ok, start.elapsed().as_secs_f64());
        }
    }

    /// Moves the WAL's pages into the database file, off the request's
    /// thread (the pool's connections run it; it may wait on the disk).
    fn checkpoint_later(&self) {
        let (Pool::Sqlite(pool), Ok(rt)) = (&self.pool, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let pool = pool.clone();
        rt.spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "checkpoint failed; the next one retries");
            }
        });
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
            // The file the pool really opened: none for an in-memory
            // database, which is the pool's own. Read-only, immutable or
            // custom-VFS URLs keep to the pool too.
            let (file,): (String,) =
                sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&pool)
                    .await?;
            let query = cfg.url.split_once('?').map_or("", |(_, q)| q);
            let special = query.split('&').any(|kv| {
                matches!(kv, "mode=ro" | "mode=memory")
                    || kv.starts_with("immutable=")
                    || kv.starts_with("vfs=")
            });
            let direct = if file.is_empty() || special {
                None
            } else {
                let file = std::path::Path::new(&file);
                // A reader for each thread that may ask at once (Rocket's
                // workers, one a core by default).
                let readers =
                    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 16));
                let direct = Direct::open(file, readers)
                    .map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
                Some(std::sync::Arc::new(direct))
            };
            Ok(Db {
                pool: Pool::Sqlite(pool),
                timeout: acquire,
                direct,
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
                direct: None,
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
        if let Some(d) = &self.direct {
            d.closed.store(true, std::sync::atomic::Ordering::Release);
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
mod direct_tests {
    use super::{Db, DbError};
    use crate::config::DatabaseConfig;
    use rusqlite::OptionalExtension;
    use std::time::{Duration, Instant};

    async fn sqlite(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let cfg: DatabaseConfig =
            serde_json::from_value(serde_json::json!({ "url": url, "timeout_ms": 300 })).unwrap();
        let db = Db::connect(&cfg).await.unwrap();
        super::with_pool!(&db, p => sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .execute(p).await.map(|_| ()))
        .unwrap();
        db
    }

    fn read(db: &Db, k: i64) -> Option<Option<String>> {
        db.read_now(|c| {
            c.prepare_cached("SELECT v FROM t WHERE k = $1")?
                .query_row([k], |r| r.get(0))
                .optional()
        })
    }

    async fn pool_write(db: &Db, sql: &'static str) -> Result<(), DbError> {
        Ok(super::with_pool!(db, p => sqlx::query(sql).execute(p).await.map(|_| ()))?)
    }

    /// The property revocation rests on: a direct read sees every write the
    /// pool committed before it, at once (no snapshot kept between reads).
    #[tokio::test]
    async fn direct_reads_see_each_commit_and_direct_writes_reach_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        assert_eq!(read(&db, 1), Some(None), "the direct path answers");
        pool_write(&db, "INSERT INTO t (k, v) VALUES (1, 'a')")
            .await
            .unwrap();
        assert_eq!(read(&db, 1), Some(Some("a".into())));
        pool_write(&db, "UPDATE t SET v = 'b' WHERE k = 1")
            .await
            .unwrap();
        assert_eq!(read(&db, 1), Some(Some("b".into())), "no stale snapshot");
        pool_write(&db, "DELETE FROM t WHERE k = 1").await.unwrap();
        assert_eq!(read(&db, 1), Some(None));

        let wrote = db.write_now(|c| c.execute("INSERT INTO t (k, v) VALUES (2, 'w')", []));
        assert_eq!(wrote, Some(1));
        let (v,): (String,) =
            super::with_pool!(&db, p => sqlx::query_as("SELECT v FROM t WHERE k = 2")
            .fetch_one(p).await)
            .unwrap();
        assert_eq!(v, "w");
        // Direct connections may only read, except the writer.
        assert_eq!(
            db.read_now(|c| c.execute("INSERT INTO t (k, v) VALUES (3, 'x')", [])),
            None
        );
    }

    /// A locked database is not waited for on the request's thread: the
    /// direct call gives up at once, writes nothing, and the caller's pool
    /// call waits within the time limit.
    #[tokio::test]
    async fn a_locked_database_is_left_to_the_pool_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let super::Pool::Sqlite(pool) = db.pool() else {
            unreachable!()
        };
        let mut holder = pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *holder)
            .await
            .unwrap();
        let start = Instant::now();
        let wrote = db.write_now(|c| c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", []));
        assert_eq!(wrote, None);
        // Not even the pool's time limit (300 ms): no wait at all.
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        // Readers are not blocked by a writer (WAL).
        assert_eq!(read(&db, 1), Some(None));
        // The pool's own attempt waits out the time limit: a 503.
        let err = pool_write(&db, "INSERT INTO t (k, v) VALUES (1, 'y')")
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        assert_eq!(read(&db, 1), Some(None), "the refused write left nothing");
        assert_eq!(
            db.write_now(|c| c.execute("INSERT INTO t (k, v) VALUES (1, 'z')", [])),
            Some(1)
        );
    }

    /// A direct write that fails after its statement ran leaves nothing, so
    /// the caller's retry on the pool cannot write twice.
    #[tokio::test]
    async fn a_failed_direct_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let wrote: Option<()> = db.write_now(|c| {
            c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?;
            Err(rusqlite::Error::InvalidQuery)
        });
        assert_eq!(wrote, None);
        assert_eq!(read(&db, 1), Some(None));
    }

    /// An in-memory database is the pool's alone: direct connections would
    /// open another database.
    #[tokio::test]
    async fn an_in_memory_database_has_no_direct_path() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let cfg: DatabaseConfig =
                serde_json::from_value(serde_json::json!({ "url": url })).unwrap();
            let db = Db::connect(&cfg).await.unwrap();
            assert_eq!(
                db.read_now(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))),
                None,
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_db_has_no_direct_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        db.close().await;
        assert_eq!(read(&db, 1), None);
        assert_eq!(db.write_now(|c| c.execute("DELETE FROM t", [])), None);
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
