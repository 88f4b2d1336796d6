//! Every query gatehouse runs. Each is one SQL text valid on both engines.

use rusqlite::OptionalExtension;

use super::{with_pool, Db, DbError, DbTime};
use crate::config::ThrottleRule;

/// A row of FS's `user` table, as much of it as authentication needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Primary key (INTEGER; `SERIAL` on PostgreSQL, as FS creates it).
    pub id: i32,
    /// Sign-in identity, unique case-insensitively.
    pub email: String,
    /// The stored hash; `None` for accounts without a password.
    pub password: Option<String>,
    /// Inactive users cannot sign in and their sessions and tokens are refused.
    pub active: bool,
    /// The identity inside sessions and tokens; rotating it revokes them all.
    pub fs_uniquifier: String,
    /// FS two-factor method, when the user enrolled in one.
    pub tf_primary_method: Option<String>,
}

const USER_COLUMNS: &str = "id, email, password, active, fs_uniquifier, tf_primary_method";

impl User {
    /// The user of a [`Db::read_now`] row whose first columns are
    /// [`USER_COLUMNS`].
    pub(crate) fn from_reader(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        Ok(User {
            id: row.get(0)?,
            email: row.get(1)?,
            password: row.get(2)?,
            active: row.get(3)?,
            fs_uniquifier: row.get(4)?,
            tf_primary_method: row.get(5)?,
        })
    }
}

/// A user with the time their session was last used.
#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    user: User,
    last_seen: i64,
}

/// The sign-in tracking columns (FS `SECURITY_TRACKABLE`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tracking {
    /// Start of the sign-in before the current one.
    pub last_login_at: Option<DbTime>,
    /// Start of the current sign-in.
    pub current_login_at: Option<DbTime>,
    /// Client address of the sign-in before the current one.
    pub last_login_ip: Option<String>,
    /// Client address of the current sign-in.
    pub current_login_ip: Option<String>,
    /// Successful sign-ins so far.
    pub login_count: Option<i32>,
}

/// A row of FS's `role` table.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Role {
    /// Primary key.
    pub id: i32,
    /// Unique role name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Comma-separated permission names, as FS stores them.
    pub permissions: Option<String>,
}

impl Role {
    /// The role's permissions, split and trimmed.
    pub fn permission_list(&self) -> impl Iterator<Item = &str> {
        self.permissions
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }
}

/// One user with the names of their roles, for admin listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    /// Primary key.
    pub id: i32,
    /// Sign-in identity.
    pub email: String,
    /// Whether the account may sign in.
    pub active: bool,
    /// Role names, sorted.
    pub roles: Vec<String>,
}

/// The identities of a new user row: the random ones FS fills, and
/// gatehouse's canonical email key.
#[derive(Debug, Clone)]
pub struct NewIds {
    /// `gh_email_key`: the canonical form of the email (unique).
    pub email_key: String,
    /// `fs_uniquifier`: inside every session and token.
    pub uniquifier: String,
    /// `fs_webauthn_user_handle`: the user's id for passkeys.
    pub webauthn_user_handle: String,
}

/// Within a rotation's transaction `$tx`: everything that let `$user`
/// in ends with it: session records, devices, refresh families (revoked, as
/// FS's `reset_user_access`), personal access tokens (revoked).
macro_rules! end_access {
    ($tx:ident, $user:expr, $now:expr) => {{
        const SESSIONS: &str = "DELETE FROM gh_session WHERE user_id = $1";
        const DEVICES: &str = "DELETE FROM gh_device WHERE user_id = $1";
        const FAMILIES: &str =
            "UPDATE fs_refresh SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
        const PATS: &str =
            "UPDATE gh_pat SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
        sqlx::query(SESSIONS).bind($user).execute(&mut *$tx).await?;
        sqlx::query(DEVICES).bind($user).execute(&mut *$tx).await?;
        sqlx::query(FAMILIES)
            .bind($user)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(PATS)
            .bind($user)
            .bind($now.unix())
            .execute(&mut *$tx)
            .await?;
    }};
}

impl Db {
    /// Looks a user up by the canonical form of an email (`key`); a row
    /// that Flask-Security wrote and gatehouse has not keyed yet is found
    /// by `lower(email)`. A keyed row wins.
    pub async fn user_by_email(&self, key: &str, email: &str) -> Result<Option<User>, DbError> {
        // A key counts only while its source is still the email: FS may
        // have changed the email since (a stale key is recomputed later).
        let sql = format!(
            r#"SELECT {USER_COLUMNS} FROM "user"
               WHERE (gh_email_key = $1 AND gh_email_source = email)
                  OR ((gh_email_key IS NULL OR gh_email_source IS NULL OR gh_email_source <> email)
                      AND lower(email) = lower($2))
               ORDER BY (CASE WHEN gh_email_key = $1 AND gh_email_source = email THEN 0 ELSE 1 END)
               LIMIT 1"#
        );
        Ok(
            with_pool!(self, p => sqlx::query_as(&sql).bind(key).bind(email).fetch_optional(p).await)?,
        )
    }

    /// Up to `limit` users whose canonical email key is not set yet (rows
    /// Flask-Security wrote), after id `after`.
    pub async fn unkeyed_users(
        &self,
        after: i32,
        limit: i64,
    ) -> Result<Vec<(i32, String)>, DbError> {
        const SQL: &str = r#"SELECT id, email FROM "user"
            WHERE (gh_email_key IS NULL OR gh_email_source IS NULL OR gh_email_source <> email) AND id > $1
            ORDER BY id LIMIT $2"#;
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(after).bind(limit).fetch_all(p).await)?)
    }

    /// Sets a user's canonical email key; [`DbError::AlreadyExists`] when
    /// another account already has it (a look-alike pair).
    pub async fn set_email_key(&self, user_id: i32, key: &str, email: &str) -> Result<(), DbError> {
        const SQL: &str = r#"UPDATE "user" SET gh_email_key = $2, gh_email_source = $3
            WHERE id = $1 AND email = $3"#;
        with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(key).bind(email)
            .execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Drops a user's (stale) key, so the key is free for the account whose
    /// email it now is.
    pub async fn clear_email_key(&self, user_id: i32) -> Result<(), DbError> {
        const SQL: &str =
            r#"UPDATE "user" SET gh_email_key = NULL, gh_email_source = NULL WHERE id = $1"#;
        with_pool!(self, p => sqlx::query(SQL).bind(user_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Looks a user up by fs_uniquifier: the one way sessions and tokens find
    /// their user. Runs on every authenticated request.
    pub async fn user_by_uniquifier(&self, uid: &str) -> Result<Option<User>, DbError> {
        const SQL: &str = r#"SELECT id, email, password, active, fs_uniquifier, tf_primary_method
            FROM "user" WHERE fs_uniquifier = $1"#;
        let read = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .query_row([uid], User::from_reader)
                .optional()
        };
        if let Some(found) = self.read_now(read) {
            return Ok(found);
        }
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(uid).fetch_optional(p).await)?)
    }

    /// Creates an active user with the given roles, in one transaction.
    /// [`DbError::AlreadyExists`] when the email is taken (in any letter
    /// case), decided by the unique index, so parallel registrations of one
    /// email make exactly one account.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: Option<&str>,
        ids: &NewIds,
        role_ids: &[i32],
    ) -> Result<User, DbError> {
        let sql = format!(
            r#"INSERT INTO "user" (email, password, active, fs_uniquifier, fs_webauthn_user_handle,
                 create_datetime, update_datetime, gh_email_key, gh_email_source)
               VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $1) RETURNING {USER_COLUMNS}"#
        );
        const ROLE: &str = "INSERT INTO roles_users (user_id, role_id) VALUES ($1, $2)";
        let now = DbTime::now();
        Ok(with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let user: User = sqlx::query_as(&sql)
                .bind(email)
                .bind(password_hash)
                .bind(true)
                .bind(&ids.uniquifier)
                .bind(&ids.webauthn_user_handle)
                .bind(now)
                .bind(&ids.email_key)
                .fetch_one(&mut *tx)
                .await?;
            for role_id in role_ids {
                sqlx::query(ROLE).bind(user.id).bind(role_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(user)
        })?)
    }

    /// Replaces the fs_uniquifier (and, when given, the password hash, in
    /// the same statement): every session and token of the user dies at
    /// once. Their session rows, dead from that moment, go in the same
    /// transaction. With `expected`, only while the uniquifier is still that
    /// one (a compare-and-set: of two uses of one reset link at once, one
    /// wins). Returns false when nothing changed (no such user, or the
    /// uniquifier moved on).
    pub async fn rotate_uniquifier(
        &self,
        user_id: i32,
        uniquifier: &str,
        password_hash: Option<&str>,
        expected: Option<&str>,
    ) -> Result<bool, DbError> {
        const SQL: &str = r#"UPDATE "user" SET fs_uniquifier = $2,
            password = COALESCE($3, password), update_datetime = $4
            WHERE id = $1 AND fs_uniquifier = COALESCE($5, fs_uniquifier)"#;
        let now = DbTime::now();
        let done = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(SQL)
                .bind(user_id).bind(uniquifier).bind(password_hash).bind(now).bind(expected)
                .execute(&mut *tx).await?.rows_affected();
            if done == 1 {
                end_access!(tx, user_id, now);
            }
            tx.commit().await?;
            Ok(done)
        })?;
        Ok(done == 1)
    }

    /// One stored hash of each kind that takes its own time to verify
    /// (each bcrypt cost, and up to a hundred argon2 hashes to sort by
    /// their parameters), for timing calibration at start.
    pub async fn password_samples(&self) -> Result<Vec<String>, DbError> {
        const KINDS: &str =
            r#"SELECT DISTINCT substr(password, 1, 7) FROM "user" WHERE password LIKE '$2%'"#;
        const ONE: &str =
            r#"SELECT password FROM "user" WHERE substr(password, 1, 7) = $1 LIMIT 1"#;
        const ARGON2: &str =
            r#"SELECT password FROM "user" WHERE password LIKE '$argon2%' LIMIT 100"#;
        let kinds: Vec<(String,)> =
            with_pool!(self, p => sqlx::query_as(KINDS).fetch_all(p).await)?;
        let mut out = Vec::new();
        for (kind,) in kinds {
            let one: Option<(String,)> =
                with_pool!(self, p => sqlx::query_as(ONE).bind(&kind).fetch_optional(p).await)?;
            out.extend(one.map(|(h,)| h));
        }
        let argon2: Vec<(String,)> =
            with_pool!(self, p => sqlx::query_as(ARGON2).fetch_all(p).await)?;
        out.extend(argon2.into_iter().map(|(h,)| h));
        Ok(out)
    }

    /// Replaces the stored hash of the same password (a rehash): the
    /// fs_uniquifier is kept, so sessions and tokens live on.
    pub async fn set_password_hash(
        &self,
        user_id: i32,
        password_hash: &str,
    ) -> Result<(), DbError> {
        const SQL: &str = r#"UPDATE "user" SET password = $2, update_datetime = $3 WHERE id = $1"#;
        let now = DbTime::now();
        with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(password_hash).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Sets whether the user may sign in; false when there is no such user.
    pub async fn set_active(&self, user_id: i32, active: bool) -> Result<bool, DbError> {
        const SQL: &str = r#"UPDATE "user" SET active = $2, update_datetime = $3 WHERE id = $1"#;
        let now = DbTime::now();
        let done = with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(active).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Records a successful sign-in, as FS's trackable does, in one atomic
    /// statement (concurrent sign-ins never lose a count).
    pub async fn record_login(&self, user_id: i32, ip: Option<&str>) -> Result<(), DbError> {
        const SQL: &str = r#"UPDATE "user" SET
                last_login_at = COALESCE(current_login_at, $2),
                current_login_at = $2,
                last_login_ip = COALESCE(current_login_ip, $3),
                current_login_ip = $3,
                login_count = COALESCE(login_count, 0) + 1
            WHERE id = $1"#;
        let now = DbTime::now();
        with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(now).bind(ip).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The sign-in tracking data of a user.
    pub async fn tracking(&self, user_id: i32) -> Result<Option<Tracking>, DbError> {
        const SQL: &str = r#"SELECT last_login_at, current_login_at, last_login_ip, current_login_ip, login_count
            FROM "user" WHERE id = $1"#;
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(user_id).fetch_optional(p).await)?)
    }

    /// The roles of a user, by name.
    pub async fn user_roles(&self, user_id: i32) -> Result<Vec<Role>, DbError> {
        const SQL: &str = r#"SELECT r.id, r.name, r.description, r.permissions
            FROM role r JOIN roles_users ru ON ru.role_id = r.id
            WHERE ru.user_id = $1 ORDER BY r.name"#;
        let read = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .query_map([user_id], |r| {
                    Ok(Role {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        description: r.get(2)?,
                        permissions: r.get(3)?,
                    })
                })?
                .collect()
        };
        if let Some(found) = self.read_now(read) {
            return Ok(found);
        }
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(user_id).fetch_all(p).await)?)
    }

    /// Every user with their role names, by id.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, DbError> {
        const SQL: &str = r#"SELECT u.id, u.email, u.active, r.name
            FROM "user" u
            LEFT JOIN roles_users ru ON ru.user_id = u.id
            LEFT JOIN role r ON r.id = ru.role_id
            ORDER BY u.id, r.name"#;
        let rows: Vec<(i32, String, bool, Option<String>)> =
            with_pool!(self, p => sqlx::query_as(SQL).fetch_all(p).await)?;
        let mut out: Vec<UserSummary> = Vec::new();
        for (id, email, active, role) in rows {
            if out.last().map(|u| u.id) != Some(id) {
                out.push(UserSummary {
                    id,
                    email,
                    active,
                    roles: Vec::new(),
                });
            }
            if let (Some(role), Some(last)) = (role, out.last_mut()) {
                last.roles.push(role);
            }
        }
        Ok(out)
    }

    /// Every role, by name.
    pub async fn list_roles(&self) -> Result<Vec<Role>, DbError> {
        const SQL: &str = "SELECT id, name, description, permissions FROM role ORDER BY name";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    /// Creates a role; [`DbError::AlreadyExists`] when the name is taken.
    pub async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: Option<&str>,
    ) -> Result<Role, DbError> {
        const SQL: &str = r#"INSERT INTO role (name, description, permissions, update_datetime)
            VALUES ($1, $2, $3, $4) RETURNING id, name, description, permissions"#;
        let now = DbTime::now();
        Ok(with_pool!(self, p => sqlx::query_as(SQL)
            .bind(name).bind(description).bind(permissions).bind(now)
            .fetch_one(p).await)?)
    }

    /// Looks a role up by name.
    pub async fn role_by_name(&self, name: &str) -> Result<Option<Role>, DbError> {
        const SQL: &str = "SELECT id, name, description, permissions FROM role WHERE name = $1";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(name).fetch_optional(p).await)?)
    }

    /// Gives a user a role; false when they already had it.
    pub async fn add_role(&self, user_id: i32, role_id: i32) -> Result<bool, DbError> {
        const SQL: &str = "INSERT INTO roles_users (user_id, role_id) VALUES ($1, $2)
            ON CONFLICT (user_id, role_id) DO NOTHING";
        let done = with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(role_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Takes a role from a user; false when they did not have it.
    pub async fn remove_role(&self, user_id: i32, role_id: i32) -> Result<bool, DbError> {
        const SQL: &str = "DELETE FROM roles_users WHERE user_id = $1 AND role_id = $2";
        let done = with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(role_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done >= 1)
    }
}

/// What the throttle decided for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Attempts in the current window, this one included.
    pub attempts: i32,
    /// Whether this attempt may go on (to the password check).
    pub allowed: bool,
    /// When the next attempt will be let through (unix seconds; 0 = now).
    pub next_allowed: i64,
}

impl Db {
    /// Records a signed-in session (by the SHA-256 of its id).
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i32,
        now: i64,
        expires_at: i64,
        device: &str,
    ) -> Result<(), DbError> {
        const SQL: &str =
            "INSERT INTO gh_session (id_hash, user_id, created_at, expires_at, last_seen_at, device_id)
            VALUES ($1, $2, $3, $4, $3, $5)";
        with_pool!(self, p => sqlx::query(SQL).bind(id_hash).bind(user_id).bind(now).bind(expires_at)
            .bind(device).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The active user of a live session: the session row exists, has not
    /// expired, was used since `idle_since` (0: no inactivity limit), and
    /// its user still has the uniquifier the cookie carries. Also returns
    /// when the session was last used. One query on every
    /// session-authenticated request.
    pub async fn user_by_session(
        &self,
        id_hash: &str,
        uid: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<(User, i64)>, DbError> {
        const SQL: &str = r#"SELECT u.id, u.email, u.password, u.active, u.fs_uniquifier, u.tf_primary_method,
                COALESCE(s.last_seen_at, s.created_at) AS last_seen
            FROM gh_session s JOIN "user" u ON u.id = s.user_id
            WHERE s.id_hash = $1 AND u.fs_uniquifier = $2 AND s.expires_at > $3 AND u.active = $4
              AND COALESCE(s.last_seen_at, s.created_at) > $5"#;
        let read = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .query_row((id_hash, uid, now, true, idle_since), |r| {
                    Ok((User::from_reader(r)?, r.get(6)?))
                })
                .optional()
        };
        if let Some(found) = self.read_now(read) {
            return Ok(found);
        }
        let row: Option<SessionRow> = with_pool!(self, p => sqlx::query_as(SQL)
            .bind(id_hash).bind(uid).bind(now).bind(true).bind(idle_since)
            .fetch_optional(p).await)?;
        Ok(row.map(|r| (r.user, r.last_seen)))
    }

    /// Records that a session was used at `now` (for the inactivity limit).
    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), DbError> {
        const SQL: &str = "UPDATE gh_session SET last_seen_at = $2 WHERE id_hash = $1";
        let write = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .execute(rusqlite::named_params! { "$1": id_hash, "$2": now })
        };
        if self.write_now(write).is_some() {
            return Ok(());
        }
        with_pool!(self, p => sqlx::query(SQL).bind(id_hash).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Ends one session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        const SQL: &str = "DELETE FROM gh_session WHERE id_hash = $1";
        with_pool!(self, p => sqlx::query(SQL).bind(id_hash).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes the records of sessions that expired by `now` (housekeeping).
    pub async fn purge_sessions(&self, now: i64) -> Result<u64, DbError> {
        const SQL: &str = "DELETE FROM gh_session WHERE expires_at <= $1";
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(now).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Counts an attempt on `key` and decides, in one atomic statement, whether
    /// it may go on: freely up to `limit` per window, then one attempt per
    /// backoff period, the period doubling up to `max_delay`. Parallel
    /// attempts are all counted: the row is updated in place.
    pub async fn throttle(
        &self,
        key: &str,
        now: i64,
        rule: ThrottleRule,
    ) -> Result<ThrottleState, DbError> {
        // Every SET expression reads the row as it was before the update.
        // NW (new window):  t.window_start <= now - window
        // R  (refused):     over the limit and still inside the backoff
        // The limit-th attempt arms the first backoff; each attempt let
        // through after that doubles it, up to max_delay.
        const SQL: &str = "INSERT INTO gh_throttle AS t (key, attempts, granted, window_start, next_allowed, delay)
            VALUES ($1, 1, 1, $2, 0, 0)
            ON CONFLICT (key) DO UPDATE SET
              attempts = CASE WHEN t.window_start <= $2 - $3 THEN 1 ELSE t.attempts + 1 END,
              window_start = CASE WHEN t.window_start <= $2 - $3 THEN $2 ELSE t.window_start END,
              granted = CASE
                WHEN t.window_start <= $2 - $3 THEN 1
                WHEN t.attempts + 1 > $4 AND t.next_allowed > $2 THEN t.granted
                ELSE t.attempts + 1 END,
              delay = CASE
                WHEN t.window_start <= $2 - $3 OR t.attempts + 1 < $4 THEN 0
                WHEN t.attempts + 1 > $4 AND t.next_allowed > $2 THEN t.delay
                WHEN t.delay = 0 THEN $5
                WHEN t.delay * 2 > $6 THEN $6
                ELSE t.delay * 2 END,
              next_allowed = CASE
                WHEN t.window_start <= $2 - $3 OR t.attempts + 1 < $4 THEN 0
                WHEN t.attempts + 1 > $4 AND t.next_allowed > $2 THEN t.next_allowed
                WHEN t.delay = 0 THEN $2 + $5
                WHEN t.delay * 2 > $6 THEN $2 + $6
                ELSE $2 + t.delay * 2 END
            RETURNING attempts, granted, next_allowed";
        let (attempts, granted, next_allowed): (i32, i32, i64) = with_pool!(self, p => sqlx::query_as(SQL)
            .bind(key).bind(now).bind(rule.window).bind(rule.limit).bind(rule.base_delay).bind(rule.max_delay)
            .fetch_one(p).await)?;
        Ok(ThrottleState {
            attempts,
            allowed: granted == attempts,
            next_allowed,
        })
    }

    /// Deletes throttle rows whose window is over and whose backoff has
    /// passed: they would start afresh anyway. Keeps a table keyed by
    /// attacker-chosen emails from growing without bound.
    pub async fn purge_throttle(&self, now: i64, window: i64) -> Result<u64, DbError> {
        const SQL: &str = "DELETE FROM gh_throttle WHERE window_start <= $1 AND next_allowed <= $2";
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(now - window).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Forgets the attempts on `key` (after a successful sign-in).
    pub async fn clear_throttle(&self, key: &str) -> Result<(), DbError> {
        const SQL: &str = "DELETE FROM gh_throttle WHERE key = $1";
        with_pool!(self, p => sqlx::query(SQL).bind(key).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The stored two-factor authenticator secret (FS `tf_totp_secret`).
    pub async fn totp_secret(&self, user_id: i32) -> Result<Option<String>, DbError> {
        const SQL: &str = r#"SELECT tf_totp_secret FROM "user" WHERE id = $1"#;
        let v: Option<Option<String>> = with_pool!(self, p => sqlx::query_scalar(SQL).bind(user_id)
            .fetch_optional(p).await)?;
        Ok(v.flatten())
    }

    /// Records that `user_id` signed in with the code of `counter`, unless a
    /// code of that step or a later one was used already: false then (a
    /// replay). One statement, so two uses at once cannot both pass.
    pub async fn use_totp_counter(&self, user_id: i32, counter: i64) -> Result<bool, DbError> {
        const SQL: &str = "INSERT INTO gh_tf_counter (user_id, last_counter) VALUES ($1, $2)
            ON CONFLICT (user_id) DO UPDATE SET last_counter = excluded.last_counter
            WHERE gh_tf_counter.last_counter < excluded.last_counter
            RETURNING last_counter";
        let v: Option<i64> = with_pool!(self, p => sqlx::query_scalar(SQL).bind(user_id).bind(counter)
            .fetch_optional(p).await)?;
        Ok(v.is_some())
    }

    /// Sets (or, with `None`, removes) the user's two-factor method and its
    /// stored secret, as FS's `tf_set` / `tf_reset` do; a new method
    /// forgets the codes used with the old one.
    pub async fn set_two_factor(
        &self,
        user_id: i32,
        method: Option<(&str, &str)>,
    ) -> Result<(), DbError> {
        const SQL: &str = r#"UPDATE "user" SET tf_primary_method = $2, tf_totp_secret = $3,
            update_datetime = $4 WHERE id = $1"#;
        const COUNTER: &str = "DELETE FROM gh_tf_counter WHERE user_id = $1";
        let now = DbTime::now();
        let (m, secret) = method.unzip();
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(SQL).bind(user_id).bind(m).bind(secret).bind(now).execute(&mut *tx).await?;
            sqlx::query(COUNTER).bind(user_id).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// The stored recovery codes (FS `mf_recovery_codes`, comma-separated).
    pub async fn recovery_codes(&self, user_id: i32) -> Result<Option<String>, DbError> {
        const SQL: &str = r#"SELECT mf_recovery_codes FROM "user" WHERE id = $1"#;
        let v: Option<Option<String>> = with_pool!(self, p => sqlx::query_scalar(SQL).bind(user_id)
            .fetch_optional(p).await)?;
        Ok(v.flatten().filter(|c| !c.is_empty()))
    }

    /// Replaces the stored recovery codes: with `expected`, only while they
    /// are still exactly that (so one code cannot be used twice at once);
    /// false when they were not.
    pub async fn set_recovery_codes(
        &self,
        user_id: i32,
        expected: Option<&str>,
        codes: Option<&str>,
    ) -> Result<bool, DbError> {
        const ANY: &str = r#"UPDATE "user" SET mf_recovery_codes = $2, update_datetime = $3
            WHERE id = $1"#;
        const CAS: &str = r#"UPDATE "user" SET mf_recovery_codes = $2, update_datetime = $3
            WHERE id = $1 AND mf_recovery_codes = $4"#;
        let now = DbTime::now();
        let n = match expected {
            None => with_pool!(self, p => sqlx::query(ANY).bind(user_id).bind(codes).bind(now)
                .execute(p).await.map(|r| r.rows_affected()))?,
            Some(old) => with_pool!(self, p => sqlx::query(CAS).bind(user_id).bind(codes).bind(now)
                .bind(old).execute(p).await.map(|r| r.rows_affected()))?,
        };
        Ok(n == 1)
    }

    /// Takes every second factor away from an account (a support case: a
    /// lost phone): its method, secret, recovery codes and used-code
    /// counter, and rotates its fs_uniquifier so every session and token
    /// ends; FS's `reset_user_access` for two-factor. One transaction.
    pub async fn reset_two_factor(&self, user_id: i32, uniquifier: &str) -> Result<bool, DbError> {
        const SQL: &str = r#"UPDATE "user" SET tf_primary_method = NULL, tf_totp_secret = NULL,
            mf_recovery_codes = NULL, fs_uniquifier = $2, update_datetime = $3 WHERE id = $1"#;
        const COUNTER: &str = "DELETE FROM gh_tf_counter WHERE user_id = $1";
        let now = DbTime::now();
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(user_id).bind(uniquifier).bind(now).execute(&mut *tx).await?
                .rows_affected();
            sqlx::query(COUNTER).bind(user_id).execute(&mut *tx).await?;
            end_access!(tx, user_id, now);
            tx.commit().await.map(|_| n)
        })?;
        Ok(n == 1)
    }
}
