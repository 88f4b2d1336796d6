//! Security headers on every response.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Request, Response};

use crate::core::Security;

/// No inline script or style anywhere, so the pages work under this policy
/// and an injected `<script>` does not run.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Sets CSP, framing, sniffing, referrer and caching headers.
pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info {
            name: "security headers",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        res.set_header(Header::new("Content-Security-Policy", CSP));
        res.set_header(Header::new("X-Frame-Options", "DENY"));
        res.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        // Paths can carry `next=…`; other sites get the origin at most.
        res.set_header(Header::new("Referrer-Policy", "same-origin"));
        // Anything dynamic may be personal: never stored by a cache. Static
        // files keep their own caching.
        if !req.uri().path().starts_with("/static/") && !res.headers().contains("Cache-Control") {
            res.set_header(Header::new("Cache-Control", "private, no-store"));
        }
        let secure = req
            .rocket()
            .state::<Security>()
            .is_some_and(|s| s.config.cookie_secure);
        if secure {
            res.set_header(Header::new(
                "Strict-Transport-Security",
                "max-age=63072000; includeSubDomains",
            ));
        }
    }
}
