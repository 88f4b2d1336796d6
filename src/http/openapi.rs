//! `GET /openapi.yaml`: the OpenAPI description of the JSON API
//! (docs/openapi.yaml, built into the binary). schemathesis checks the
//! running server against it in CI (scripts/openapi-check).

use rocket::http::ContentType;
use rocket::{get, routes};

/// The description, as committed.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.yaml");

#[get("/openapi.yaml")]
fn openapi() -> (ContentType, &'static str) {
    (ContentType::new("application", "yaml"), DOCUMENT)
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![openapi]
}
