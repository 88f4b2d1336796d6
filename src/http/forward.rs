//! Forward auth: `GET /auth/check` for nginx `auth_request`, Traefik
//! `forwardAuth` and Caddy `forward_auth`, so any backend behind the proxy
//! gets gatehouse's sign-in. A valid session or token answers 200 with the
//! identity in headers; anything else 401 (or 403 for a missing role or
//! permission), never a redirect: nginx accepts only 2xx, 401 and 403 from
//! an auth subrequest. For browsers, `X-Auth-Login` carries the login URL
//! with the original URL as `next` (taken from `X-Original-URI` or
//! `X-Forwarded-Uri` only when a trusted proxy sends it), for the proxy to
//! redirect to. Every check reads the database, so revocation is immediate.

use rocket::http::{Header, Status};
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder};
use rocket::{get, routes, Request, State};

use super::credentials::security;
use super::envelope::Envelope;
use super::error::ApiError;
use super::guards::{passes, Check as Access, MaybeUser};
use crate::core::validate::is_safe_next;
use crate::core::Security;

/// The URL the proxy is asking about, when a trusted proxy says it.
struct OriginalUri(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for OriginalUri {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let trusted = &security(req).config.trusted_proxies;
        let from_proxy = req
            .remote()
            .is_some_and(|peer| trusted.iter().any(|n| n.contains(peer.ip())));
        let uri = from_proxy
            .then(|| {
                ["X-Original-URI", "X-Forwarded-Uri"]
                    .iter()
                    .find_map(|h| req.headers().get_one(h))
            })
            .flatten()
            .filter(|u| is_safe_next(u))
            .map(str::to_owned);
        request::Outcome::Success(OriginalUri(uri))
    }
}

/// The answer to a check: a status, the identity headers, and for a
/// refusal the envelope and the login URL.
struct Check {
    status: Status,
    headers: Vec<Header<'static>>,
    envelope: Option<Envelope>,
}

impl<'r> Responder<'r, 'static> for Check {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut res = match self.envelope {
            Some(env) => response::Response::build_from(env.respond_to(req)?),
            None => response::Response::build(),
        };
        res.status(self.status)
            .raw_header("Cache-Control", "private, no-store");
        for h in self.headers {
            res.header(h);
        }
        res.ok()
    }
}

fn names(list: Option<&str>) -> Vec<&str> {
    list.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// `?roles=a,b` requires every role; `?permissions=x,y` every permission.
#[get("/auth/check?<roles>&<permissions>")]
async fn check(
    who: MaybeUser,
    original: OriginalUri,
    roles: Option<&str>,
    permissions: Option<&str>,
    sec: &State<Security>,
) -> Result<Check, ApiError> {
    let Some(auth) = who.0 else {
        let next = original.0.unwrap_or_else(|| "/".into());
        let login = format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        );
        let env = ApiError::Unauthenticated { basic: false }.envelope();
        return Ok(Check {
            status: Status::Unauthorized,
            headers: vec![Header::new("X-Auth-Login", login)],
            envelope: Some(env),
        });
    };
    let held = auth.scoped(sec.db.user_roles(auth.user.id).await?);
    if !passes(Access::AllRoles, &held, &names(roles))
        || !passes(Access::AllPermissions, &held, &names(permissions))
    {
        return Ok(Check {
            status: Status::Forbidden,
            headers: Vec::new(),
            envelope: Some(ApiError::Forbidden.envelope()),
        });
    }
    let cfg = &sec.config;
    let role_names: Vec<&str> = held.iter().map(|r| r.name.as_str()).collect();
    Ok(Check {
        status: Status::Ok,
        headers: vec![
            Header::new(cfg.auth_user_id_header.clone(), auth.user.id.to_string()),
            Header::new(cfg.auth_email_header.clone(), auth.user.email.clone()),
            Header::new(cfg.auth_roles_header.clone(), role_names.join(",")),
        ],
        envelope: None,
    })
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![check]
}
