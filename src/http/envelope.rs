//! The FS JSON envelope and the JSON-or-HTML decision (WIRE.md §1-2).

use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::Request;
use serde_json::{Map, Value};

use super::credentials::presented_token;

/// `{"meta":{"code":N},"response":{…}}`, compact with sorted keys, sent with
/// `Cache-Control: private, no-store`.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// HTTP status, repeated in `meta.code`.
    pub status: Status,
    /// The `response` object.
    pub response: Map<String, Value>,
    /// Extra headers (Location, Retry-After, WWW-Authenticate).
    pub headers: Vec<Header<'static>>,
}

impl Envelope {
    /// An envelope with the given status and response object.
    pub fn new(status: Status, response: Map<String, Value>) -> Self {
        Envelope {
            status,
            response,
            headers: Vec::new(),
        }
    }

    /// A 200 envelope.
    pub fn ok(response: Map<String, Value>) -> Self {
        Self::new(Status::Ok, response)
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value.into()));
        self
    }

    /// The serialized body. serde_json's map is ordered, so keys come out sorted.
    pub fn body(&self) -> String {
        #[derive(serde::Serialize)]
        struct Meta {
            code: u16,
        }
        // In this order, as FS (and serde_json's sorted maps) write it.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            meta: Meta,
            response: &'a Map<String, Value>,
        }
        let body = Body {
            meta: Meta {
                code: self.status.code,
            },
            response: &self.response,
        };
        serde_json::to_string(&body).expect("JSON values serialize")
    }
}

impl<'r> Responder<'r, 'static> for Envelope {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let body = self.body();
        let mut res = response::Response::build_from(body.respond_to(req)?);
        res.status(self.status)
            .header(ContentType::JSON)
            .raw_header("Cache-Control", "private, no-store");
        for h in self.headers {
            res.header(h);
        }
        res.ok()
    }
}

/// Builds a JSON object from `key => value` pairs.
#[macro_export]
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = ::serde_json::Map::new();
        $( m.insert(($k).into(), ::serde_json::json!($v)); )*
        m
    }};
}

/// Whether this request wants JSON rather than HTML (WIRE.md §2): a JSON
/// content type, an Accept header whose best match is `application/json`,
/// or (gatehouse) a presented auth token.
pub fn wants_json(req: &Request<'_>) -> bool {
    /// The decision, cached under its own type (a bare `bool` would share
    /// the request cache with any other `bool`).
    struct WantsJson(bool);
    req.local_cache(|| {
        let json_body = req.content_type().is_some_and(is_json_type);
        let wanted = json_body
            || req
                .headers()
                .get_one("Accept")
                .is_some_and(accept_prefers_json)
            || presented_token(req).is_some();
        WantsJson(wanted)
    })
    .0
}

/// `application/json` or `application/*+json`.
pub fn is_json_type(ct: &ContentType) -> bool {
    ct.top() == "application" && (ct.sub() == "json" || ct.sub().as_str().ends_with("+json"))
}

/// Werkzeug's `accept_mimetypes.best == "application/json"`: entries sorted
/// by specificity, then quality (stable), the first one wins.
pub fn accept_prefers_json(accept: &str) -> bool {
    let mut entries: Vec<((bool, bool), f32, String)> = accept
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let media = pieces.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let mut q = 1.0f32;
            for p in pieces {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        // NaN, infinities and garbage count as q=0 (a NaN
                        // once made the sort below panic).
                        q = v
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| q.is_finite())
                            .unwrap_or(0.0);
                    }
                }
            }
            if q <= 0.0 {
                return None;
            }
            let (top, sub) = media.split_once('/').unwrap_or((media.as_str(), "*"));
            let specificity = (top != "*", sub != "*");
            Some((specificity, q, media))
        })
        .collect();
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    entries.first().is_some_and(|e| e.2 == "application/json")
}

#[cfg(test)]
mod tests {
    use super::accept_prefers_json as j;

    #[test]
    fn accept_rules_from_the_wire_contract() {
        assert!(j("application/json"));
        assert!(j("application/json, text/plain, */*"));
        assert!(!j("*/*"));
        assert!(!j("text/html,application/json;q=0.9"));
        assert!(j("text/html;q=0.5, application/json"));
        assert!(!j(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!j(""));
        assert!(!j("application/json;q=0"));
        // Issue 11, item 6: these panicked (a sort with a non-total order).
        assert!(!j("application/json;q=NaN"));
        assert!(j("text/html;q=NaN, application/json"));
        assert!(!j("application/json;q=inf, text/html"));
        let many = (0..40)
            .map(|i| format!("a/{i};q=NaN, b/{i};q=0.{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = j(&many);
    }
}
