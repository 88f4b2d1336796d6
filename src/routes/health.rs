//! Health endpoints for load balancers and orchestrators.

use rocket::http::Status;
use rocket::response::status::Custom;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, State};

use crate::auth::Security;

/// The process is up and serving. Never touches the database, so a
/// database outage does not get healthy instances restarted.
#[get("/livez")]
fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve auth requests: the database answers within its limit.
#[get("/readyz")]
async fn readyz(sec: &State<Security>) -> Custom<Json<Value>> {
    match sec.db.ping().await {
        Ok(()) => Custom(
            Status::Ok,
            Json(json!({ "status": "ready", "database": sec.db.backend() })),
        ),
        Err(e) => {
            tracing::warn!(cause = %e, "readiness: database unavailable");
            Custom(
                Status::ServiceUnavailable,
                Json(json!({ "status": "unavailable", "database": sec.db.backend() })),
            )
        }
    }
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![livez, readyz]
}
