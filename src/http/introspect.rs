//! Token introspection (RFC 7662): `POST /introspect` tells a configured
//! service whether a gatehouse token is active, and for whom. Anything bad,
//! expired, revoked or belonging to an inactive user is `{"active":false}`,
//! never why.

use rocket::http::{Header, Status};
use rocket::serde::json::{json, Json, Value};
use rocket::{post, routes};

use super::error::ApiError;
use super::guards::{ClientSubmission, Rejected};
use super::page::Ctx;

/// An RFC 7662 answer (plain JSON, not the FS envelope).
#[derive(rocket::Responder)]
enum Answer {
    /// 200, active or not.
    #[response(status = 200, content_type = "json")]
    Ok(Json<Value>),
    /// 400 for a request without a token (RFC 6749 §5.2's error).
    #[response(status = 400, content_type = "json")]
    InvalidRequest(Json<Value>),
    /// 401 for a client that did not prove itself.
    #[response(status = 401, content_type = "json")]
    InvalidClient(Json<Value>, Header<'static>),
}

fn invalid_request() -> Answer {
    Answer::InvalidRequest(Json(json!({
        "error": "invalid_request",
        "error_description": "Send the token to introspect as the string field token.",
    })))
}

#[post("/introspect", data = "<sub>")]
async fn introspect(
    ctx: Ctx<'_>,
    sub: Result<ClientSubmission, Rejected>,
) -> Result<Answer, ApiError> {
    ctx.check_ip()?;
    let sub = match sub {
        Ok(sub) => sub,
        Err(r) if r.error.status() == Status::Unauthorized => {
            return Ok(Answer::InvalidClient(
                Json(json!({ "error": "invalid_client" })),
                Header::new("WWW-Authenticate", r#"Basic realm="introspection""#),
            ))
        }
        // A body that is not a form or a JSON object.
        Err(r) if r.error.status() == Status::BadRequest => return Ok(invalid_request()),
        Err(r) => return Err(r.error),
    };
    // Absent or not a string: the request asks nothing (an empty token is
    // a token, and inactive).
    let Some(token) = sub.input.string("token") else {
        return Ok(invalid_request());
    };
    let answer = match ctx.sec.introspect(token).await? {
        Some(t) => json!({
            "active": true,
            "sub": t.user.id.to_string(),
            "username": t.user.email,
            "iat": t.iat,
            "exp": t.exp,
            "scope": t.roles.join(" "),
            "roles": t.roles,
            "token_type": "Authentication-Token",
        }),
        None => json!({ "active": false }),
    };
    tracing::info!(event = "introspect", client = %sub.client, active = answer["active"].as_bool(), "token introspected");
    Ok(Answer::Ok(Json(answer)))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![introspect]
}
