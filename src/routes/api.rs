//! The small demo API from the tutorial gatehouse grew from. Mounted by the
//! binary (and the tests); an app embedding the library brings its own.

use rocket::fs::NamedFile;
use rocket::http::Status;
use rocket::response::status::Custom;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, State};

use crate::auth::guards::{AuthUser, BasicUser, RolesRequired, TokenUser};
use crate::auth::Security;
use crate::db::Like;
use crate::error::ApiError;
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
    let roles = sec.db.user_roles(auth.user.id).await?;
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
    let (like, new) = sec.db.add_like(article_id, auth.user.id).await?;
    let count = sec.db.count_likes(article_id).await?;
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
    let count = sec.db.count_likes(article_id).await?;
    Ok(Json(json!({ "article_id": article_id, "likes": count })))
}

#[get("/api/articles/<article_id>/likes/<like_id>")]
async fn one_like(
    article_id: i64,
    like_id: i64,
    sec: &State<Security>,
) -> Result<Json<Value>, ApiError> {
    let like = sec
        .db
        .like(article_id, like_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let count = sec.db.count_likes(article_id).await?;
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
async fn demo(dir: &State<crate::StaticDir>) -> Result<NamedFile, ApiError> {
    let path = dir.0.join("demo.html");
    NamedFile::open(&path).await.map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "demo page missing");
        ApiError::NotFound
    })
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
