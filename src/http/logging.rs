//! Logs: one line per request (method, route template or unmatched path,
//! status, latency, request id; also counted in the metrics) and one event
//! per auth outcome, emitted where it happens. Users are named
//! by id only; tokens, passwords, cookies and query strings are never logged.

use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

use crate::metrics::RequestLabels;

/// Header carrying the request id, in and out.
pub const REQUEST_ID: &str = "X-Request-Id";

/// The fairing that stamps and logs every request.
pub struct RequestLog;

#[derive(Clone)]
struct Stamp {
    id: String,
    start: Instant,
}

/// A client-supplied request id is kept when it is short and plain, so it
/// can be followed across a proxy; anything else is replaced.
fn sanitize(id: &str) -> Option<&str> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then_some(id)
}

fn stamp<'r>(req: &'r Request<'_>) -> &'r Stamp {
    req.local_cache(|| Stamp {
        id: req
            .headers()
            .get_one(REQUEST_ID)
            .and_then(sanitize)
            .map_or_else(crate::core::random_hex::<8>, str::to_owned),
        start: Instant::now(),
    })
}

/// The id of this request (as logged and sent back in `X-Request-Id`).
pub fn request_id<'r>(req: &'r Request<'_>) -> &'r str {
    &stamp(req).id
}

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info {
            name: "request log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        stamp(req);
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let s = stamp(req);
        let elapsed = s.start.elapsed().as_secs_f64();
        // A matched route is named by its template (`/reset/<token>`), in
        // the log and the metrics alike: no path parameter (a link's token
        // is a credential) reaches either, and the label set stays bounded.
        // Only a path no route serves is logged as it came (never its query:
        // that may carry tokens or emails).
        let route = req.route().map(|r| r.uri.path());
        if let Some(sec) = req.rocket().state::<crate::core::Security>() {
            sec.metrics.request(
                &RequestLabels {
                    method: req.method().as_str(),
                    route: route.unwrap_or("unmatched").to_owned(),
                    status: res.status().code,
                },
                elapsed,
            );
        }
        let latency_ms = (elapsed * 100_000.0).round() / 100.0;
        let path = route.unwrap_or_else(|| req.uri().path().as_str());
        tracing::info!(
            target: "gatehouse::request",
            method = %req.method(),
            path = %path,
            status = res.status().code,
            latency_ms,
            request_id = %s.id,
            "request"
        );
        res.set_header(Header::new(REQUEST_ID, s.id.clone()));
    }
}

/// Targets that print credentials at some level, capped whatever
/// `RUST_LOG` asks: Rocket's server logs the whole request (headers with
/// tokens, Basic credentials and cookies) at debug and the request line
/// with its query (`?auth_token=`) at info. [`RequestLog`] logs what is
/// useful of a request instead.
///
/// Rocket's notes under a request (`rocket::server::_`: "No matching
/// routes for GET /x" at error, "Responding with registered catcher" at
/// warn) are off: every 404 and 401 printed them, so anyone could fill the
/// error log, and they were 7% of a 401's instructions. The request line says
/// the same; a handler panic still reaches the panic hook and logs a 500.
const CAPPED: &[&str] = &[
    "rocket::server=warn",
    "rocket::server::_=off",
    "hyper=warn",
    "h2=warn",
];

/// Installs the global tracing subscriber: readable text by default, one
/// JSON object per line with `json = true`. `RUST_LOG` overrides `filter`,
/// except that no level may print a credential (see [`CAPPED`]).
pub fn init(json: bool, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let asked = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_owned());
    let directives = std::iter::once(asked.as_str())
        .chain(CAPPED.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("RUST_LOG {asked:?} is invalid ({e}); using {filter:?}");
        EnvFilter::new(format!("{filter},{}", CAPPED.join(",")))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_sanitized() {
        assert_eq!(super::sanitize("abc-123_x.y"), Some("abc-123_x.y"));
        assert_eq!(super::sanitize(""), None);
        assert_eq!(super::sanitize("a b"), None);
        assert_eq!(super::sanitize("a\r\nSet-Cookie: x"), None);
        assert_eq!(super::sanitize(&"a".repeat(65)), None);
    }
}
