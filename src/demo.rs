//! The small demo API from the tutorial gatehouse grew from: article likes,
//! a token-only hello, who-am-I, an admin listing, and the single-page demo
//! at /demo. Not part of the reusable library: it is compiled only with the
//! `demo` cargo feature, which the binary needs; an app embedding the
//! library turns default features off and brings its own routes.
//!
//! Its table (`gh_article_like`) and queries live here. Migration 0002 also
//! created the table before the demo moved out; applied migrations cannot
//! change (sqlx checks their checksums), so it stays there as history, and
//! [`fairing`] creates it where it is missing.

use rocket::http::{ContentType, Status};
use rocket::response::status::Custom;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, State};
use rusqlite::OptionalExtension;

use crate::core::Security;
use crate::db::{with_pool, Db, DbError, DbTime};
use crate::http::assets::Assets;
use crate::http::error::ApiError;
use crate::http::guards::{AuthUser, BasicUser, RolesRequired, TokenUser};
use crate::role_set;

role_set!(pub Admin = ["admin"]);

#[get("/api/public")]
fn public() -> Json<Value> {
    Json(json!({ "msg": "Hello, anyone" }))
}

/// Token only, as in the tutorial.
#[get("/api/test")]
fn test(_user: TokenUser) -> Json<Value> {
    Json(json!({ "msg": "Hello World" }))
}

/// Session or token: who am I?
#[get("/api/me")]
async fn me(auth: AuthUser, sec: &State<Security>) -> Result<Json<Value>, ApiError> {
    let roles = auth.scoped(sec.db.user_roles(auth.user.id).await?);
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    Ok(Json(
        json!({ "id": auth.user.id, "email": auth.user.email, "roles": names }),
    ))
}

fn like_json(like: &Like, count: i64) -> Value {
    json!({
        "id": like.id,
        "article_id": like.article_id,
        "user_id": like.user_id,
        "created_at": like.created_at.to_string(),
        "likes": count,
    })
}

/// The response to a created like: 201 with the like and a Location.
#[derive(rocket::Responder)]
struct Created {
    inner: Custom<Json<Value>>,
    location: rocket::http::Header<'static>,
}

/// Likes an article as the CURRENT user (from the session or token, never
/// from the body). 201 the first time, 200 with the same like after.
#[post("/api/articles/<article_id>/likes")]
async fn like(article_id: i64, auth: AuthUser, sec: &State<Security>) -> Result<Created, ApiError> {
    let (like, new) = add_like(&sec.db, article_id, auth.user.id).await?;
    let count = count_likes(&sec.db, article_id).await?;
    let status = if new { Status::Created } else { Status::Ok };
    Ok(Created {
        inner: Custom(status, Json(like_json(&like, count))),
        location: rocket::http::Header::new(
            "Location",
            format!("/api/articles/{article_id}/likes/{}", like.id),
        ),
    })
}

#[get("/api/articles/<article_id>/likes")]
async fn likes(article_id: i64, sec: &State<Security>) -> Result<Json<Value>, ApiError> {
    let count = count_likes(&sec.db, article_id).await?;
    Ok(Json(json!({ "article_id": article_id, "likes": count })))
}

#[get("/api/articles/<article_id>/likes/<like_id>")]
async fn one_like(
    article_id: i64,
    like_id: i64,
    sec: &State<Security>,
) -> Result<Json<Value>, ApiError> {
    let like = one(&sec.db, article_id, like_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let count = count_likes(&sec.db, article_id).await?;
    Ok(Json(like_json(&like, count)))
}

#[get("/api/admin/users")]
async fn admin_users(
    _admin: RolesRequired<Admin>,
    sec: &State<Security>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "users": sec.db.list_users().await? })))
}

#[get("/api/basic-test")]
fn basic_test(user: BasicUser) -> Json<Value> {
    Json(json!({ "msg": format!("Hello {}", user.0.email) }))
}

/// The single-page app demo (static/demo.html): plain JavaScript calling
/// this API with the session cookie and with a token.
#[get("/demo")]
fn demo(
    assets: &State<Assets>,
) -> Result<(ContentType, std::borrow::Cow<'static, [u8]>), ApiError> {
    assets.file("demo.html").ok_or(ApiError::NotFound)
}

/// A like stored by the demo API.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Like {
    /// Primary key.
    pub id: i64,
    /// The article liked.
    pub article_id: i64,
    /// Who liked it.
    pub user_id: i32,
    /// When.
    pub created_at: DbTime,
}

/// Stores a like of `article_id` by `user_id`. Returns the like and
/// whether it is new (a repeated like returns the existing one).
async fn add_like(db: &Db, article_id: i64, user_id: i32) -> Result<(Like, bool), DbError> {
    const INSERT: &str = "INSERT INTO gh_article_like (article_id, user_id, created_at)
        VALUES ($1, $2, $3) ON CONFLICT (article_id, user_id) DO NOTHING
        RETURNING id, article_id, user_id, created_at";
    const EXISTING: &str = "SELECT id, article_id, user_id, created_at FROM gh_article_like
        WHERE article_id = $1 AND user_id = $2";
    let now = DbTime::now();
    let write = |c: &rusqlite::Connection| {
        c.prepare_cached(INSERT)?
            .query_row((article_id, user_id, now), like_row)
            .optional()
    };
    let inserted: Option<Like> = match db.write_now(write) {
        Some(inserted) => inserted,
        None => with_pool!(db, p => sqlx::query_as(INSERT)
            .bind(article_id).bind(user_id).bind(now)
            .fetch_optional(p).await)?,
    };
    if let Some(like) = inserted {
        return Ok((like, true));
    }
    let read = |c: &rusqlite::Connection| {
        c.prepare_cached(EXISTING)?
            .query_row((article_id, user_id), like_row)
    };
    if let Some(existing) = db.read_now(read) {
        return Ok((existing, false));
    }
    let existing: Like = with_pool!(db, p => sqlx::query_as(EXISTING)
        .bind(article_id).bind(user_id)
        .fetch_one(p).await)?;
    Ok((existing, false))
}

fn like_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Like> {
    Ok(Like {
        id: r.get(0)?,
        article_id: r.get(1)?,
        user_id: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// One like of an article.
async fn one(db: &Db, article_id: i64, like_id: i64) -> Result<Option<Like>, DbError> {
    const SQL: &str = "SELECT id, article_id, user_id, created_at FROM gh_article_like
        WHERE article_id = $1 AND id = $2";
    Ok(
        with_pool!(db, p => sqlx::query_as(SQL).bind(article_id).bind(like_id).fetch_optional(p).await)?,
    )
}

/// How many likes an article has.
async fn count_likes(db: &Db, article_id: i64) -> Result<i64, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM gh_article_like WHERE article_id = $1";
    let read =
        |c: &rusqlite::Connection| c.prepare_cached(SQL)?.query_row([article_id], |r| r.get(0));
    if let Some(n) = db.read_now(read) {
        return Ok(n);
    }
    let (n,): (i64,) =
        with_pool!(db, p => sqlx::query_as(SQL).bind(article_id).fetch_one(p).await)?;
    Ok(n)
}

/// Creates the demo's table where it is missing (the same DDL as migration
/// 0002 on each backend).
async fn create_table(db: &Db) -> Result<(), DbError> {
    const SQLITE: &str = "CREATE TABLE IF NOT EXISTS gh_article_like (
        id INTEGER NOT NULL PRIMARY KEY,
        article_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL REFERENCES user (id),
        created_at DATETIME NOT NULL,
        UNIQUE (article_id, user_id))";
    const POSTGRES: &str = r#"CREATE TABLE IF NOT EXISTS gh_article_like (
        id BIGSERIAL PRIMARY KEY,
        article_id BIGINT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES "user" (id),
        created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        UNIQUE (article_id, user_id))"#;
    match db.pool() {
        crate::db::Pool::Sqlite(p) => sqlx::query(SQLITE).execute(p).await.map(|_| ())?,
        crate::db::Pool::Postgres(p) => sqlx::query(POSTGRES).execute(p).await.map(|_| ())?,
    }
    Ok(())
}

/// Makes sure the demo's table exists before serving. Attach it after
/// gatehouse's own fairing (which opens the database).
pub fn fairing() -> rocket::fairing::AdHoc {
    rocket::fairing::AdHoc::try_on_ignite("demo table", |rocket| async move {
        let Some(sec) = rocket.state::<Security>() else {
            return Err(rocket);
        };
        match create_table(&sec.db).await {
            Ok(()) => Ok(rocket),
            Err(e) => {
                tracing::error!("demo: cannot create gh_article_like: {e}");
                Err(rocket)
            }
        }
    })
}

/// The demo mounted on an app: its routes and its table.
pub fn mount(app: rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> {
    app.attach(fairing()).mount("/", routes())
}

/// The demo API's routes.
pub fn routes() -> Vec<rocket::Route> {
    routes![
        public,
        test,
        me,
        like,
        likes,
        one_like,
        admin_users,
        basic_test,
        demo
    ]
}
