//! Devices (every sign-in: its browser session, its refresh family, the
//! tokens minted from them), Flask-Security 5.9's refresh trackers
//! (`fs_refresh`), and personal access tokens. One SQL text per query for
//! both engines.

use rusqlite::OptionalExtension;

use super::{with_pool, Db, DbError, DbTime, User};

/// A device as the account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// Its public id.
    pub id: String,
    /// Browser and system, from the User-Agent at sign-in.
    pub label: String,
    /// The client address at sign-in.
    pub ip: Option<String>,
    /// Unix seconds it signed in.
    pub created_at: i64,
    /// Unix seconds it was last seen (its session or its tokens).
    pub last_used_at: i64,
    /// Unix seconds after which nothing of it works any more.
    pub expires_at: i64,
}

/// A refresh tracker (FS's `FsRefreshTracker`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    /// The account.
    pub user_id: i32,
    /// The generation of the family's only valid token.
    pub gen: Option<i32>,
    /// When the family stops working.
    pub expires_at: DbTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DbTime>,
    /// When its last token was issued.
    pub last_used_at: DbTime,
    /// FS's name for it (`default` for sign-ins).
    pub name: String,
}

/// A personal access token, as listed (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PatRow {
    /// Its public id.
    pub id: String,
    /// What the user called it.
    pub name: String,
    /// Roles it is limited to (comma-separated); none: all the user's.
    pub scope: Option<String>,
    /// Unix seconds it was made.
    pub created_at: i64,
    /// Unix seconds it was last used.
    pub last_used_at: Option<i64>,
    /// Unix seconds it stops working.
    pub expires_at: i64,
    /// Unix seconds it was revoked.
    pub revoked_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct UserAndTime {
    #[sqlx(flatten)]
    user: User,
    at: i64,
}

#[derive(sqlx::FromRow)]
struct PatLookup {
    #[sqlx(flatten)]
    user: User,
    created_at: i64,
    secret_hash: String,
    scope: Option<String>,
    expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

/// What a personal access token lookup finds.
#[derive(Debug, Clone)]
pub struct PatFound {
    /// Its owner.
    pub user: User,
    /// Unix seconds it was made.
    pub created_at: i64,
    /// SHA-256 of its secret, hex.
    pub secret_hash: String,
    /// Its roles, when limited.
    pub scope: Option<String>,
    /// Unix seconds it stops working.
    pub expires_at: i64,
    /// Unix seconds it was revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds it was last used.
    pub last_used_at: Option<i64>,
}

impl Db {
    /// Records a new device.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_device(
        &self,
        id: &str,
        user_id: i32,
        label: &str,
        ip: Option<&str>,
        now: i64,
        expires_at: i64,
        authn_at: f64,
    ) -> Result<(), DbError> {
        const SQL: &str = "INSERT INTO gh_device
            (id, user_id, label, ip, created_at, last_used_at, expires_at, authn_at)
            VALUES ($1, $2, $3, $4, $5, $5, $6, $7)";
        with_pool!(self, p => sqlx::query(SQL).bind(id).bind(user_id).bind(label).bind(ip)
            .bind(now).bind(expires_at).bind(authn_at).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Keeps a device at least until `expires_at` (something new of it
    /// lives that long) and records its use at `now`. False when it is
    /// gone (revoked).
    pub async fn extend_device(
        &self,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE gh_device SET
            expires_at = CASE WHEN expires_at < $2 THEN $2 ELSE expires_at END,
            last_used_at = $3 WHERE id = $1";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(id).bind(expires_at).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The active user a device token names: the uniquifier current and the
    /// device not revoked nor expired. Also when the device was last used.
    /// One query on every request with such a token.
    pub async fn user_by_device(
        &self,
        uid: &str,
        device: &str,
        now: i64,
    ) -> Result<Option<(User, i64)>, DbError> {
        const SQL: &str = r#"SELECT u.id, u.email, u.password, u.active, u.fs_uniquifier, u.tf_primary_method,
                d.last_used_at AS at
            FROM gh_device d JOIN "user" u ON u.id = d.user_id
            WHERE d.id = $1 AND u.fs_uniquifier = $2 AND d.expires_at > $3 AND u.active = $4"#;
        let read = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .query_row((device, uid, now, true), |r| {
                    Ok((User::from_reader(r)?, r.get(6)?))
                })
                .optional()
        };
        if let Some(found) = self.read_now(read) {
            return Ok(found);
        }
        let row: Option<UserAndTime> = with_pool!(self, p => sqlx::query_as(SQL)
            .bind(device).bind(uid).bind(now).bind(true).fetch_optional(p).await)?;
        Ok(row.map(|r| (r.user, r.at)))
    }

    /// Records that a device was used at `now`.
    pub async fn touch_device(&self, id: &str, now: i64) -> Result<(), DbError> {
        const SQL: &str =
            "UPDATE gh_device SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2";
        let write = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .execute(rusqlite::named_params! { "$1": id, "$2": now })
        };
        if self.write_now(write).is_some() {
            return Ok(());
        }
        with_pool!(self, p => sqlx::query(SQL).bind(id).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The user's live devices, newest first; the last use counts the
    /// device's browser sessions too.
    pub async fn list_devices(&self, user_id: i32, now: i64) -> Result<Vec<DeviceRow>, DbError> {
        const SQL: &str = "SELECT d.id, d.label, d.ip, d.created_at,
                CASE WHEN MAX(s.last_seen_at) > d.last_used_at THEN MAX(s.last_seen_at)
                     ELSE d.last_used_at END AS last_used_at,
                d.expires_at
            FROM gh_device d LEFT JOIN gh_session s ON s.device_id = d.id
            WHERE d.user_id = $1 AND d.expires_at > $2
            GROUP BY d.id, d.label, d.ip, d.created_at, d.last_used_at, d.expires_at
            ORDER BY d.created_at DESC, d.id";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(user_id).bind(now).fetch_all(p).await)?)
    }

    /// Signs devices of `user_id` out: `only` one of them, or every one but
    /// `keep`. Their sessions end, their refresh families are revoked, and
    /// their tokens fail from the next request on (the rows go). Returns
    /// how many went.
    pub async fn revoke_devices(
        &self,
        user_id: i32,
        only: Option<&str>,
        keep: Option<&str>,
    ) -> Result<u64, DbError> {
        // `$2` selects one device (NULL: all), `$3` spares one (NULL: none).
        const PICK: &str =
            "d.user_id = $1 AND ($2 IS NULL OR d.id = $2) AND ($3 IS NULL OR d.id <> $3)";
        let sessions = format!(
            "DELETE FROM gh_session WHERE device_id IN (SELECT d.id FROM gh_device d WHERE {PICK})"
        );
        let families = format!(
            "UPDATE fs_refresh SET revoked_at = $4 WHERE revoked_at IS NULL AND refresh_family IN
                (SELECT d.refresh_family FROM gh_device d WHERE {PICK} AND d.refresh_family IS NOT NULL)"
        );
        let devices = format!(
            "DELETE FROM gh_device WHERE id IN (SELECT d.id FROM gh_device d WHERE {PICK})"
        );
        // "Every other device" also reaches what has no device: sessions from
        // before devices, and refresh families FS made (not a device's).
        const LOOSE_SESSIONS: &str =
            "DELETE FROM gh_session WHERE user_id = $1 AND device_id IS NULL";
        const LOOSE_FAMILIES: &str = "UPDATE fs_refresh SET revoked_at = $2
            WHERE user_id = $1 AND revoked_at IS NULL AND refresh_family NOT IN
                (SELECT d.refresh_family FROM gh_device d
                 WHERE d.user_id = $1 AND d.refresh_family IS NOT NULL)";
        let now = DbTime::now();
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(&sessions).bind(user_id).bind(only).bind(keep)
                .execute(&mut *tx).await?;
            sqlx::query(&families).bind(user_id).bind(only).bind(keep).bind(now)
                .execute(&mut *tx).await?;
            let n = sqlx::query(&devices).bind(user_id).bind(only).bind(keep)
                .execute(&mut *tx).await?.rows_affected();
            if only.is_none() {
                sqlx::query(LOOSE_SESSIONS).bind(user_id).execute(&mut *tx).await?;
                sqlx::query(LOOSE_FAMILIES).bind(user_id).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await.map(|_| n)
        })?;
        Ok(n)
    }

    /// Deletes a device that was never used (it lost a race).
    pub async fn delete_device(&self, id: &str) -> Result<(), DbError> {
        const SQL: &str = "DELETE FROM gh_device WHERE id = $1";
        with_pool!(self, p => sqlx::query(SQL).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Deletes devices that expired by `now` (housekeeping).
    pub async fn purge_devices(&self, now: i64) -> Result<u64, DbError> {
        const SQL: &str = "DELETE FROM gh_device WHERE expires_at <= $1
            AND NOT EXISTS (SELECT 1 FROM gh_session s WHERE s.device_id = gh_device.id AND s.expires_at > $1)";
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(now).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    // ---- refresh trackers (fs_refresh) ----------------------------------

    /// A new refresh family for `user_id` (generation 1), as FS's
    /// `create_refresh_tracker` makes it; tied to `device` when given.
    pub async fn create_refresh(
        &self,
        family: &str,
        user_id: i32,
        name: &str,
        expires_at: DbTime,
        now: DbTime,
        device: Option<&str>,
    ) -> Result<(), DbError> {
        const SQL: &str = "INSERT INTO fs_refresh
            (refresh_family, gen, expires_at, last_used_at, create_datetime, name, user_id)
            VALUES ($1, 1, $2, $3, $3, $4, $5)";
        // A device has one live family: the one it had goes (a second
        // sign-in in the same browser must not leave the first one's refresh
        // token working, out of reach of "sign out this device").
        const OLD: &str = "UPDATE fs_refresh SET revoked_at = $2 WHERE revoked_at IS NULL
            AND refresh_family = (SELECT refresh_family FROM gh_device WHERE id = $1)";
        const LINK: &str = "UPDATE gh_device SET refresh_family = $2 WHERE id = $1";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(SQL).bind(family).bind(expires_at).bind(now).bind(name).bind(user_id)
                .execute(&mut *tx).await?;
            if let Some(d) = device {
                sqlx::query(OLD).bind(d).bind(now).execute(&mut *tx).await?;
                sqlx::query(LINK).bind(d).bind(family).execute(&mut *tx).await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// A refresh family by its id.
    pub async fn refresh_row(&self, family: &str) -> Result<Option<RefreshRow>, DbError> {
        const SQL: &str = "SELECT user_id, gen, expires_at, revoked_at, last_used_at, name
            FROM fs_refresh WHERE refresh_family = $1";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(family).fetch_optional(p).await)?)
    }

    /// Moves a family from generation `gen` to `gen + 1` at `now`, in one
    /// compare-and-set: of two refreshes with the same token, one moves it.
    pub async fn exchange_refresh(
        &self,
        family: &str,
        gen: i32,
        now: DbTime,
    ) -> Result<bool, DbError> {
        // FS's column is nullable: NULL reads as generation 1.
        const SQL: &str = "UPDATE fs_refresh SET gen = COALESCE(gen, 1) + 1, last_used_at = $3
            WHERE refresh_family = $1 AND COALESCE(gen, 1) = $2 AND revoked_at IS NULL";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(family).bind(gen).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Revokes a family (a reused token, a sign-out).
    pub async fn revoke_refresh(&self, family: &str, now: DbTime) -> Result<(), DbError> {
        const SQL: &str = "UPDATE fs_refresh SET revoked_at = $2
            WHERE refresh_family = $1 AND revoked_at IS NULL";
        with_pool!(self, p => sqlx::query(SQL).bind(family).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The device of a refresh family, and its primary authentication time.
    pub async fn device_of_family(&self, family: &str) -> Result<Option<(String, f64)>, DbError> {
        const SQL: &str = "SELECT id, authn_at FROM gh_device WHERE refresh_family = $1";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(family).fetch_optional(p).await)?)
    }

    /// Ties a device to a refresh family (one FS made, refreshed here),
    /// unless another device has it already (two first refreshes at once):
    /// false then.
    pub async fn link_family(&self, device: &str, family: &str) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE gh_device SET refresh_family = $2 WHERE id = $1
            AND NOT EXISTS (SELECT 1 FROM gh_device o WHERE o.refresh_family = $2)";
        let result: Result<u64, DbError> = with_pool!(self, p => sqlx::query(SQL).bind(device)
            .bind(family).execute(p).await.map(|r| r.rows_affected()))
        .map_err(DbError::from);
        match result {
            Ok(n) => Ok(n == 1),
            // The unique index decided the race.
            Err(DbError::AlreadyExists(_) | DbError::Constraint(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes refresh families that expired before `before` (housekeeping;
    /// FS does it when it makes a new one).
    pub async fn purge_refresh(&self, before: DbTime) -> Result<u64, DbError> {
        const SQL: &str = "DELETE FROM fs_refresh WHERE expires_at < $1";
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(before).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    // ---- personal access tokens -------------------------------------------

    /// Records a new personal access token (its secret's hash only).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_pat(
        &self,
        id: &str,
        user_id: i32,
        name: &str,
        secret_hash: &str,
        scope: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        const SQL: &str =
            "INSERT INTO gh_pat (id, user_id, name, secret_hash, scope, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(self, p => sqlx::query(SQL).bind(id).bind(user_id).bind(name).bind(secret_hash)
            .bind(scope).bind(now).bind(expires_at).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// A personal access token and its active owner, by id: one query on
    /// every request with such a token.
    pub async fn pat(&self, id: &str) -> Result<Option<PatFound>, DbError> {
        const SQL: &str = r#"SELECT u.id, u.email, u.password, u.active, u.fs_uniquifier, u.tf_primary_method,
                t.created_at, t.secret_hash, t.scope, t.expires_at, t.revoked_at, t.last_used_at
            FROM gh_pat t JOIN "user" u ON u.id = t.user_id
            WHERE t.id = $1 AND u.active = $2"#;
        let read = |c: &rusqlite::Connection| {
            c.prepare_cached(SQL)?
                .query_row((id, true), |r| {
                    Ok(PatFound {
                        user: User::from_reader(r)?,
                        created_at: r.get(6)?,
                        secret_hash: r.get(7)?,
                        scope: r.get(8)?,
                        expires_at: r.get(9)?,
                        revoked_at: r.get(10)?,
                        last_used_at: r.get(11)?,
                    })
                })
                .optional()
        };
        if let Some(found) = self.read_now(read) {
            return Ok(found);
        }
        let row: Option<PatLookup> = with_pool!(self, p => sqlx::query_as(SQL)
            .bind(id).bind(true).fetch_optional(p).await)?;
        Ok(row.map(|r| PatFound {
            user: r.user,
            created_at: r.created_at,
            secret_hash: r.secret_hash,
            scope: r.scope,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }))
    }

    /// Records that a personal access token was used at `now`.
    pub async fn touch_pat(&self, id: &str, now: i64) -> Result<(), DbError> {
        const SQL: &str = "UPDATE gh_pat SET last_used_at = $2 WHERE id = $1";
        with_pool!(self, p => sqlx::query(SQL).bind(id).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The user's personal access tokens, newest first.
    pub async fn list_pats(&self, user_id: i32) -> Result<Vec<PatRow>, DbError> {
        const SQL: &str = "SELECT id, name, scope, created_at, last_used_at, expires_at, revoked_at
            FROM gh_pat WHERE user_id = $1 ORDER BY created_at DESC, id";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(user_id).fetch_all(p).await)?)
    }

    /// Revokes a personal access token (of `user_id`, when given). False
    /// when there is no such live token.
    pub async fn revoke_pat(
        &self,
        id: &str,
        user_id: Option<i32>,
        now: i64,
    ) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE gh_pat SET revoked_at = $3
            WHERE id = $1 AND ($2 IS NULL OR user_id = $2) AND revoked_at IS NULL";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(id).bind(user_id).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
