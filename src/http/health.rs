//! Health endpoints for load balancers and orchestrators.

use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, State};

use super::error::ApiError;
use crate::core::Security;

/// The process is up and serving. Never touches the database, so a
/// database outage does not get healthy instances restarted.
#[get("/livez")]
fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve auth requests: the database answers within its limit.
/// Otherwise the standard 503 envelope with `Retry-After`.
#[get("/readyz")]
async fn readyz(sec: &State<Security>) -> Result<Json<Value>, ApiError> {
    sec.db.ping().await?;
    Ok(Json(
        json!({ "status": "ready", "database": sec.db.backend() }),
    ))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![livez, readyz]
}
