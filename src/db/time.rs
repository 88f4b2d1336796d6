//! Timestamps stored the way Flask-Security-Too (SQLAlchemy) stores them:
//! naive UTC; in SQLite as text `YYYY-MM-DD HH:MM:SS.ffffff`, in PostgreSQL as
//! `TIMESTAMP WITHOUT TIME ZONE`.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// A naive-UTC timestamp, encoded per backend as FS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(pub PrimitiveDateTime);

const WRITE: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]");
const READ_FRACTION: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
const READ_WHOLE: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

impl DbTime {
    /// The current time, naive UTC.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        DbTime(PrimitiveDateTime::new(now.date(), now.time()))
    }

    /// Seconds since the epoch, reading the value as UTC.
    pub fn unix(&self) -> i64 {
        self.0.assume_utc().unix_timestamp()
    }

    /// Seconds since the epoch with the microseconds, as Python's
    /// `datetime.timestamp()` gives them for FS's naive UTC values.
    pub fn unix_f64(&self) -> f64 {
        let t = self.0.assume_utc();
        t.unix_timestamp() as f64 + f64::from(t.microsecond()) / 1e6
    }

    /// The naive-UTC time of unix seconds `t` (to the microsecond).
    pub fn from_unix_f64(t: f64) -> Self {
        let micros = (t * 1e6).round() as i128;
        let at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        DbTime(PrimitiveDateTime::new(at.date(), at.time()))
    }

    /// The text form FS writes in SQLite.
    pub fn to_fs_string(&self) -> String {
        self.0.format(WRITE).expect("fixed format")
    }

    /// Parses the SQLite text forms FS and SQLite's CURRENT_TIMESTAMP write
    /// (a `T` separator is accepted too).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().replacen('T', " ", 1);
        PrimitiveDateTime::parse(&s, READ_FRACTION)
            .or_else(|_| PrimitiveDateTime::parse(&s, READ_WHOLE))
            .ok()
            .map(DbTime)
    }
}

impl std::fmt::Display for DbTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_fs_string())
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(_: &SqliteTypeInfo) -> bool {
        // Column affinity varies (DATETIME, TEXT); decoding checks the value.
        true
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.to_fs_string(), buf)
    }
}

/// The same text form for the direct SQLite connections (`Db::read_now`).
impl rusqlite::ToSql for DbTime {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_fs_string()))
    }
}

impl rusqlite::types::FromSql for DbTime {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        DbTime::parse(value.as_str()?).ok_or(rusqlite::types::FromSqlError::InvalidType)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Sqlite>>::decode(value)?;
        DbTime::parse(s).ok_or_else(|| format!("unreadable datetime {s:?}").into())
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <PrimitiveDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <PrimitiveDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <PrimitiveDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(DbTime(<PrimitiveDateTime as Decode<'r, Postgres>>::decode(
            value,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::DbTime;

    #[test]
    fn fs_text_forms() {
        let t = DbTime::parse("2024-05-06 07:08:09.123456").unwrap();
        assert_eq!(t.to_fs_string(), "2024-05-06 07:08:09.123456");
        let t = DbTime::parse("2024-05-06 07:08:09").unwrap();
        assert_eq!(t.to_fs_string(), "2024-05-06 07:08:09.000000");
        assert!(DbTime::parse("yesterday").is_none());
    }
}
