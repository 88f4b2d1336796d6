//! `/metrics` in Prometheus (OpenMetrics) text: on the main port behind
//! `security.metrics_token`, or on its own listener at
//! `security.metrics_address` (see [`serve`]). The request counts
//! themselves are taken by the request log fairing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::{get, routes, Request};

use super::envelope::Envelope;
use super::error::ApiError;
use crate::core::scrape::Scraper;
use crate::core::Security;

/// `Authorization: Bearer <value>`, when sent.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

const CHALLENGE: &str = r#"Bearer realm="metrics""#;

/// The answer to a scrape.
#[derive(rocket::Responder)]
enum Scrape {
    Ok(String, ContentType),
    Refused(Envelope),
}

/// The scrape's bearer token, as presented.
struct Presented<'r>(Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Presented<'r> {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        Outcome::Success(Presented(bearer(req.headers().get_one("Authorization"))))
    }
}

#[get("/metrics")]
fn metrics(sec: &rocket::State<Security>, presented: Presented<'_>) -> Result<Scrape, ApiError> {
    if !sec.metrics_on_main_port() {
        return Err(ApiError::NotFound);
    }
    let scraper = sec.scraper();
    if !scraper.allowed(presented.0) {
        let refusal = ApiError::Unauthenticated { basic: false }
            .envelope()
            .header("WWW-Authenticate", CHALLENGE);
        return Ok(Scrape::Refused(refusal));
    }
    let content_type =
        ContentType::parse_flexible(crate::metrics::CONTENT_TYPE).unwrap_or(ContentType::Plain);
    Ok(Scrape::Ok(scraper.render(), content_type))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![metrics]
}

/// Connections the metrics listener serves at once.
const MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` (and nothing else) on `listener` until the task
/// is dropped: the separate metrics address. Each connection gets 5 s to
/// send its headers and 30 s in all.
pub async fn serve(listener: tokio::net::TcpListener, scraper: Scraper) {
    let scraper = Arc::new(scraper);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let scraper = Arc::clone(&scraper);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&scraper, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            drop(permit);
        });
    }
}

fn answer<B>(scraper: &Scraper, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let reply = |status: Status, content_type: &str, body: String| {
        hyper::Response::builder()
            .status(status.code)
            .header("Content-Type", content_type)
            .header("Cache-Control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    let envelope = |e: &ApiError| e.envelope().body();
    if req.uri().path() != "/metrics" {
        return reply(
            Status::NotFound,
            "application/json",
            envelope(&ApiError::NotFound),
        );
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        let mut res = reply(
            Status::MethodNotAllowed,
            "application/json",
            envelope(&ApiError::MethodNotAllowed("GET, HEAD".into())),
        );
        res.headers_mut().insert(
            "Allow",
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return res;
    }
    let authorization = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok());
    if !scraper.allowed(bearer(authorization)) {
        let mut res = reply(
            Status::Unauthorized,
            "application/json",
            envelope(&ApiError::Unauthenticated { basic: false }),
        );
        res.headers_mut().insert(
            "WWW-Authenticate",
            hyper::header::HeaderValue::from_static(CHALLENGE),
        );
        return res;
    }
    reply(Status::Ok, crate::metrics::CONTENT_TYPE, scraper.render())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_is_read_from_authorization() {
        assert_eq!(super::bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(super::bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(super::bearer(Some("Basic abc")), None);
        assert_eq!(super::bearer(Some("Bearer")), None);
        assert_eq!(super::bearer(None), None);
    }
}
