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
            .map_or_else(new_request_id, str::to_owned),
        start: Instant::now(),
    })
}

/// A new request id: 16 hex characters, this process's random prefix and a
/// counter. Unique, which is all an id needs to be: no secret, so no read
/// of the OS random source on every request.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let prefix = PREFIX.get_or_init(crate::core::random_hex::<4>);
    format!("{prefix}{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
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
/// except that no level may print a credential (see [`CAPPED`]). Colours
/// only on a terminal: a log file gets plain text (and a line costs a tenth
/// fewer instructions).
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json {
        install(builder.json().flatten_event(true).finish())
    } else {
        install(builder.finish())
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

fn install<S>(subscriber: S) -> Result<(), Box<dyn std::error::Error>>
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    use tracing_log::AsLog;
    tracing::subscriber::set_global_default(subscriber)?;
    // After the subscriber, so that its level is known: `log` records above
    // it are skipped where they are made.
    log::set_boxed_logger(Box::new(RouteNotes(tracing_log::LogTracer::new())))?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

/// Brings the `log` crate's records (Rocket logs with it) into tracing, with
/// one change: the notes of the code Rocket generates for each route (target
/// `<module>::_`; "Request guard `TokenUser` failed" at warn on every 401)
/// are debug. They came with every rejected request, so anyone could fill
/// the log, and they were a tenth of a 401's instructions; the request line
/// and the auth events say what happened. Rocket's own targets keep their
/// levels (its notes under a request are off, see [`CAPPED`]).
struct RouteNotes(tracing_log::LogTracer);

impl RouteNotes {
    fn is_route_note(record: &log::Record<'_>) -> bool {
        let target = record.target();
        target.ends_with("::_")
            && !target.starts_with("rocket::")
            && matches!(record.level(), log::Level::Warn | log::Level::Info)
    }
}

impl log::Log for RouteNotes {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !Self::is_route_note(record) {
            return self.0.log(record);
        }
        if log::max_level() >= log::LevelFilter::Debug {
            let note = log::Record::builder()
                .args(*record.args())
                .level(log::Level::Debug)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.0.log(&note);
        }
    }

    fn flush(&self) {}
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

    #[test]
    fn new_request_ids_are_distinct_and_plain() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_eq!(&a[..8], &b[..8], "one prefix a process");
        assert_eq!(super::sanitize(&a), Some(a.as_str()));
    }
}
