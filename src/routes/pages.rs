//! Plain pages: home.

use rocket::http::Status;
use rocket::{get, routes};

use super::{render, Ctx, FormView, Reply};
use crate::error::ApiError;

#[get("/")]
async fn home(ctx: Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.session_user().await?;
    Ok(render(
        &ctx,
        "index",
        Status::Ok,
        FormView::default(),
        user.as_ref(),
    ))
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![home]
}
