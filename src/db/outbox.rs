//! The mail outbox and the account changes the email flows make (confirm,
//! change of address). One SQL text per query for both engines, except the
//! claim, which on PostgreSQL skips rows another instance has locked.

use super::{with_pool, Db, DbError, DbTime, Pool, User};

/// A mail to send, as the worker claimed it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Primary key.
    pub id: i64,
    /// What to send (`reset`, `confirm`, `change_email`, a notice, …).
    pub kind: String,
    /// The address it goes to.
    pub recipient: String,
    /// The account it is about, when known at request time.
    pub user_id: Option<i32>,
    /// The kind's parameters (JSON).
    pub data: String,
    /// Unix seconds it was queued.
    pub created_at: i64,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// The end of this claim's lease: the final update of the row holds
    /// only while it is still ours.
    pub locked_until: i64,
}

/// A new row for the outbox.
pub struct NewMail<'a> {
    /// What to send.
    pub kind: &'a str,
    /// Where to.
    pub recipient: &'a str,
    /// About whom.
    pub user_id: Option<i32>,
    /// The kind's parameters (JSON).
    pub data: &'a str,
}

const CLAIM_TAIL: &str = "ORDER BY id LIMIT $3";

impl Db {
    /// Queues a mail, due at once; returns its id.
    pub async fn enqueue_mail(&self, mail: &NewMail<'_>, now: i64) -> Result<i64, DbError> {
        const SQL: &str =
            "INSERT INTO gh_outbox (kind, recipient, user_id, data, created_at, next_attempt_at)
            VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
        Ok(with_pool!(self, p => sqlx::query_scalar(SQL)
            .bind(mail.kind).bind(mail.recipient).bind(mail.user_id).bind(mail.data).bind(now)
            .fetch_one(p).await)?)
    }

    /// Claims up to `limit` due mails for `lease` seconds: nobody else
    /// claims them until the lease ends (a worker that died mid-send has
    /// its rows taken over then). Each claim counts as an attempt. On
    /// PostgreSQL, rows another instance is claiming right now are skipped
    /// (`FOR UPDATE SKIP LOCKED`), so each mail goes to one worker.
    pub async fn claim_mail(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, DbError> {
        let lock = match self.pool() {
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE gh_outbox SET locked_until = $1 + $2, attempts = attempts + 1
             WHERE id IN (SELECT id FROM gh_outbox
               WHERE sent_at IS NULL AND failed_at IS NULL
                 AND next_attempt_at <= $1 AND locked_until <= $1
               {CLAIM_TAIL}{lock})
             RETURNING id, kind, recipient, user_id, data, created_at, attempts, locked_until"
        );
        let mut rows: Vec<OutboxRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(now).bind(lease).bind(limit).fetch_all(p).await)?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// The mail went out (or was dropped on purpose: `note` says why).
    /// False when the claim's lease was lost to another worker meanwhile.
    pub async fn mail_done(
        &self,
        row: &OutboxRow,
        now: i64,
        note: Option<&str>,
    ) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE gh_outbox SET sent_at = $2, locked_until = 0, last_error = $3
            WHERE id = $1 AND locked_until = $4";
        Ok(with_pool!(self, p => sqlx::query(SQL)
            .bind(row.id).bind(now).bind(note).bind(row.locked_until)
            .execute(p).await.map(|r| r.rows_affected()))?
            == 1)
    }

    /// Sending failed: try again at `next_at` (false: the lease was lost).
    pub async fn mail_retry(
        &self,
        row: &OutboxRow,
        next_at: i64,
        error: &str,
    ) -> Result<bool, DbError> {
        const SQL: &str =
            "UPDATE gh_outbox SET next_attempt_at = $2, locked_until = 0, last_error = $3
            WHERE id = $1 AND locked_until = $4";
        Ok(with_pool!(self, p => sqlx::query(SQL)
            .bind(row.id).bind(next_at).bind(error).bind(row.locked_until)
            .execute(p).await.map(|r| r.rows_affected()))?
            == 1)
    }

    /// Sending failed for good (false: the lease was lost).
    pub async fn mail_failed(
        &self,
        row: &OutboxRow,
        now: i64,
        error: &str,
    ) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE gh_outbox SET failed_at = $2, locked_until = 0, last_error = $3
            WHERE id = $1 AND locked_until = $4";
        Ok(with_pool!(self, p => sqlx::query(SQL)
            .bind(row.id).bind(now).bind(error).bind(row.locked_until)
            .execute(p).await.map(|r| r.rows_affected()))?
            == 1)
    }

    /// Mails not sent yet (due or waiting for a retry).
    pub async fn outbox_depth(&self) -> Result<i64, DbError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM gh_outbox WHERE sent_at IS NULL AND failed_at IS NULL";
        Ok(with_pool!(self, p => sqlx::query_scalar(SQL).fetch_one(p).await)?)
    }

    /// Deletes sent and failed mails older than `before` (unix seconds).
    pub async fn purge_outbox(&self, before: i64) -> Result<u64, DbError> {
        const SQL: &str = "DELETE FROM gh_outbox WHERE (sent_at IS NOT NULL AND sent_at < $1)
            OR (failed_at IS NOT NULL AND failed_at < $1)";
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(before).execute(p).await
            .map(|r| r.rows_affected()))?,
        )
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: i32) -> Result<Option<User>, DbError> {
        const SQL: &str = r#"SELECT id, email, password, active, fs_uniquifier, tf_primary_method
            FROM "user" WHERE id = $1"#;
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await)?)
    }

    /// Whether the user's email is confirmed (FS `confirmed_at` is set).
    pub async fn is_confirmed(&self, user_id: i32) -> Result<bool, DbError> {
        const SQL: &str = r#"SELECT confirmed_at IS NOT NULL FROM "user" WHERE id = $1"#;
        let v: Option<bool> = with_pool!(self, p => sqlx::query_scalar(SQL).bind(user_id)
            .fetch_optional(p).await)?;
        Ok(v.unwrap_or(false))
    }

    /// Marks the email confirmed now, unless it already is; true when this
    /// call confirmed it.
    pub async fn confirm_email(&self, user_id: i32) -> Result<bool, DbError> {
        const SQL: &str = r#"UPDATE "user" SET confirmed_at = $2, update_datetime = $2
            WHERE id = $1 AND confirmed_at IS NULL"#;
        let now = DbTime::now();
        Ok(
            with_pool!(self, p => sqlx::query(SQL).bind(user_id).bind(now).execute(p).await
            .map(|r| r.rows_affected()))?
                == 1,
        )
    }

    /// Replaces the email (and its canonical key), confirmed now, as FS
    /// does after a change of address, if it is still `old_email`.
    /// [`DbError::AlreadyExists`] when another account took the address.
    /// Returns false when the account's email is no longer `old_email`.
    pub async fn change_email(
        &self,
        user_id: i32,
        old_email: &str,
        new_email: &str,
        new_key: &str,
    ) -> Result<bool, DbError> {
        const SQL: &str = r#"UPDATE "user" SET email = $3, gh_email_key = $4, gh_email_source = $3,
            confirmed_at = $5, update_datetime = $5 WHERE id = $1 AND email = $2"#;
        let now = DbTime::now();
        Ok(with_pool!(self, p => sqlx::query(SQL)
            .bind(user_id).bind(old_email).bind(new_email).bind(new_key).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?
            == 1)
    }
}
