//! Plain pages: home.

use rocket::http::{Method, Status};
use rocket::request::{self, FromRequest};
use rocket::{get, routes, Request};

use super::error::ApiError;
use super::guards::MaybeUser;
use super::page::{render, Ctx, FormView, Reply};
use crate::core::FieldErrors;
use crate::obj;

/// Whether the app mounts the SPA demo (the binary does; an embedding app
/// may not), so the home page links to it only when it exists.
struct DemoMounted(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for DemoMounted {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let mounted = req
            .rocket()
            .routes()
            .any(|r| r.method == Method::Get && r.uri.path() == "/demo");
        request::Outcome::Success(DemoMounted(mounted))
    }
}

#[get("/")]
async fn home(ctx: Ctx<'_>, who: MaybeUser, demo: DemoMounted) -> Result<Reply, ApiError> {
    let user = who.0.filter(|a| a.session().is_some()).map(|a| a.user);
    let values = obj! { "demo" => demo.0 };
    Ok(render(
        &ctx,
        "index",
        Status::Ok,
        FormView::new(&FieldErrors::default(), values),
        user.as_ref(),
    ))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![home]
}
