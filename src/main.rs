//! The gatehouse server binary.

use tracing_subscriber::EnvFilter;

#[rocket::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rocket::server=warn,_=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let app =
        gatehouse::rocket(rocket::Config::figment()).mount("/", gatehouse::routes::api::routes());
    match app.launch().await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
