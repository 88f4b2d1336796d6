//! The gatehouse binary: the server (default), account administration, and
//! a configuration check. Every command reads the same configuration as the
//! server: Rocket.toml and ROCKET_* variables.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gatehouse::core::admin::{self, AdminError};
use gatehouse::Security;

/// Authentication and session server, wire-compatible with Flask-Security-Too.
#[derive(Parser)]
#[command(name = "gatehouse", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default when no command is given)
    Serve,
    /// Manage users
    #[command(subcommand)]
    Users(Users),
    /// Manage roles
    #[command(subcommand)]
    Roles(Roles),
    /// Manage personal access tokens
    #[command(subcommand)]
    Tokens(Tokens),
    /// Print the effective configuration (secrets masked) and fail on weak settings
    CheckConfig,
    /// Measure one password hash at a bcrypt cost, to choose bcrypt_cost
    HashTime {
        /// The cost to measure (default: the configured bcrypt_cost)
        #[arg(long)]
        cost: Option<u32>,
        /// How many hashes to average over
        #[arg(long, default_value_t = 8)]
        rounds: u32,
    },
}

#[derive(Args)]
struct PasswordSource {
    /// Read the password from the first line of standard input instead of
    /// prompting (passwords are never taken as arguments)
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum Users {
    /// Create an active user
    Create {
        /// The user's email (the sign-in identity)
        email: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Give the user this role (repeatable; the role must exist)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Let a user sign in again
    Activate {
        /// The user's email
        email: String,
    },
    /// Block a user: every session and token stops working at once
    Deactivate {
        /// The user's email
        email: String,
    },
    /// Sign a user out everywhere (rotates fs_uniquifier)
    ResetAccess {
        /// The user's email
        email: String,
    },
    /// Set a new password (also signs the user out everywhere)
    ChangePassword {
        /// The user's email
        email: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List users with their roles
    List,
    /// Mark a user's email confirmed (with `confirmable` on, they can sign in)
    Confirm {
        /// The user's email
        email: String,
    },
    /// Mail a user a password reset link (a running server sends it)
    SendReset {
        /// The user's email
        email: String,
    },
    /// Turn a user's two-factor sign-in off (a lost phone): removes their
    /// authenticator and recovery codes and signs them out everywhere
    ResetTwoFactor {
        /// The user's email
        email: String,
    },
}

#[derive(Subcommand)]
enum Tokens {
    /// Create a personal access token for a user (printed once)
    Create {
        /// The user's email
        email: String,
        /// What the token is for
        #[arg(long)]
        name: String,
        /// Days it works
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Limit it to these roles of the user (comma-separated)
        #[arg(long, value_delimiter = ',')]
        role: Vec<String>,
    },
    /// List a user's personal access tokens
    List {
        /// The user's email
        email: String,
    },
    /// Revoke a personal access token by its id
    Revoke {
        /// The token's id (from `tokens list`)
        id: String,
    },
}

#[derive(Subcommand)]
enum Roles {
    /// Create a role
    Create {
        /// The role's name
        name: String,
        /// Permissions of the role, comma-separated (e.g. read,write)
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        /// A description
        #[arg(long)]
        description: Option<String>,
    },
    /// Give a user a role
    Add {
        /// The user's email
        email: String,
        /// The role's name
        role: String,
    },
    /// Take a role from a user
    Remove {
        /// The user's email
        email: String,
        /// The role's name
        role: String,
    },
    /// List roles with their permissions
    List,
}

fn read_password(source: &PasswordSource) -> Result<String, String> {
    if source.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no password: run in a terminal to be prompted, or pipe it with --password-stdin"
                .into(),
        );
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let second = rpassword::prompt_password("Repeat password: ").map_err(|e| e.to_string())?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

async fn state() -> Result<Security, String> {
    gatehouse::build_state(
        &rocket::Config::figment(),
        std::sync::Arc::new(gatehouse::core::SystemClock),
    )
    .await
    .map_err(|e| e.to_string())
}

fn fail(reason: impl std::fmt::Display) -> ExitCode {
    eprintln!("gatehouse: {reason}");
    ExitCode::FAILURE
}

async fn users(cmd: Users) -> Result<String, String> {
    let password = match &cmd {
        Users::Create { password, .. } | Users::ChangePassword { password, .. } => {
            let p = read_password(password)?;
            admin::check_password(&p).map_err(|e| e.to_string())?;
            Some(p)
        }
        _ => None,
    };
    let sec = state().await?;
    let e = |e: AdminError| e.to_string();
    let out = match cmd {
        Users::Create { email, roles, .. } => {
            let u = admin::create_user(
                &sec,
                &email,
                password.as_deref().unwrap_or_default(),
                &roles,
            )
            .await
            .map_err(e)?;
            format!("created user {} (id {})", u.email, u.id)
        }
        Users::Activate { email } => {
            let u = admin::set_active(&sec, &email, true).await.map_err(e)?;
            format!("activated {}", u.email)
        }
        Users::Deactivate { email } => {
            let u = admin::set_active(&sec, &email, false).await.map_err(e)?;
            format!(
                "deactivated {}: every session and token is refused",
                u.email
            )
        }
        Users::ResetAccess { email } => {
            let u = admin::reset_access(&sec, &email).await.map_err(e)?;
            format!("signed {} out everywhere", u.email)
        }
        Users::ChangePassword { email, .. } => {
            let u = admin::change_password(&sec, &email, password.as_deref().unwrap_or_default())
                .await
                .map_err(e)?;
            format!(
                "changed the password of {} and signed them out everywhere",
                u.email
            )
        }
        Users::Confirm { email } => {
            let (u, now) = admin::confirm_user(&sec, &email).await.map_err(e)?;
            if now {
                format!("confirmed {}", u.email)
            } else {
                format!("{} was confirmed already", u.email)
            }
        }
        Users::SendReset { email } => {
            let u = admin::send_reset(&sec, &email).await.map_err(e)?;
            format!(
                "queued a password reset link for {}: a running gatehouse sends it",
                u.email
            )
        }
        Users::ResetTwoFactor { email } => {
            let (u, had) = admin::reset_two_factor(&sec, &email).await.map_err(e)?;
            if had {
                format!(
                    "turned two-factor sign-in off for {} and signed them out everywhere",
                    u.email
                )
            } else {
                format!(
                    "{} had no two-factor sign-in; signed them out everywhere",
                    u.email
                )
            }
        }
        Users::List => {
            let mut out = format!("{:>6}  {:<40}  {:<8}  roles", "id", "email", "active");
            for u in admin::list_users(&sec).await.map_err(e)? {
                out.push_str(&format!(
                    "\n{:>6}  {:<40}  {:<8}  {}",
                    u.id,
                    u.email,
                    if u.active { "yes" } else { "no" },
                    u.roles.join(",")
                ));
            }
            out
        }
    };
    sec.db.close().await;
    Ok(out)
}

async fn tokens(cmd: Tokens) -> Result<String, String> {
    let sec = state().await?;
    let e = |e: AdminError| e.to_string();
    Ok(match cmd {
        Tokens::Create {
            email,
            name,
            days,
            role,
        } => {
            let scope = (!role.is_empty()).then_some(role.as_slice());
            let (view, token) = admin::create_token(&sec, &email, &name, days, scope)
                .await
                .map_err(e)?;
            format!(
                "created token {} ({}), good until {}; it is shown only now:\n{token}",
                view.id,
                view.name,
                gatehouse::core::utc_minutes(view.expires_at)
            )
        }
        Tokens::List { email } => {
            let mut out = format!(
                "{:<16}  {:<24}  {:<20}  {:<20}  roles",
                "id", "name", "expires", "last used"
            );
            for t in admin::list_tokens(&sec, &email).await.map_err(e)? {
                let state = if t.revoked {
                    "revoked".to_owned()
                } else {
                    gatehouse::core::utc_minutes(t.expires_at)
                };
                out.push_str(&format!(
                    "\n{:<16}  {:<24}  {:<20}  {:<20}  {}",
                    t.id,
                    t.name,
                    state,
                    t.last_used_at
                        .map_or("never".to_owned(), gatehouse::core::utc_minutes),
                    t.scope.map_or("all".to_owned(), |s| s.join(","))
                ));
            }
            out
        }
        Tokens::Revoke { id } => {
            admin::revoke_token(&sec, &id).await.map_err(e)?;
            format!("revoked token {id}")
        }
    })
}

async fn roles(cmd: Roles) -> Result<String, String> {
    let sec = state().await?;
    let e = |e: AdminError| e.to_string();
    let out = match cmd {
        Roles::Create {
            name,
            permissions,
            description,
        } => {
            let r = admin::create_role(&sec, &name, &permissions, description.as_deref())
                .await
                .map_err(e)?;
            format!("created role {} (id {})", r.name, r.id)
        }
        Roles::Add { email, role } => {
            match admin::add_role(&sec, &email, &role).await.map_err(e)? {
                true => format!("gave {email} the role {role}"),
                false => format!("{email} already has the role {role}"),
            }
        }
        Roles::Remove { email, role } => {
            match admin::remove_role(&sec, &email, &role).await.map_err(e)? {
                true => format!("took the role {role} from {email}"),
                false => format!("{email} did not have the role {role}"),
            }
        }
        Roles::List => {
            let mut out = format!("{:>6}  {:<24}  permissions", "id", "name");
            for r in admin::list_roles(&sec).await.map_err(e)? {
                out.push_str(&format!(
                    "\n{:>6}  {:<24}  {}",
                    r.id,
                    r.name,
                    r.permissions.unwrap_or_default()
                ));
            }
            out
        }
    };
    sec.db.close().await;
    Ok(out)
}

/// Times the full password path (NFKD, HMAC pre-hash, bcrypt) on one core.
async fn hash_time(
    figment: &rocket::figment::Figment,
    cost: Option<u32>,
    rounds: u32,
) -> Result<String, String> {
    let cost = match cost {
        Some(c) => c,
        None => {
            gatehouse::config::SecurityConfig::from_figment(figment)
                .map_err(|e| e.to_string())?
                .bcrypt_cost
        }
    };
    let hasher = gatehouse::core::password::Hasher::new(
        secrecy::SecretString::from("timing"),
        cost,
        1,
        std::time::Duration::from_secs(600),
    )
    .map_err(|e| e.to_string())?;
    let rounds = rounds.max(1);
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        hasher
            .hash("correct horse battery")
            .await
            .map_err(|e| e.to_string())?;
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(format!(
        "cost={cost} ms_per_hash={ms:.2} cores={cores} bound_per_s={:.2}",
        cores as f64 * 1000.0 / ms
    ))
}

async fn serve() -> ExitCode {
    // Everything that can stop a start is checked before Rocket starts, so
    // each problem is one line with its reason.
    let figment = rocket::Config::figment();
    let clock = std::sync::Arc::new(gatehouse::core::SystemClock);
    let state = match gatehouse::build_state(&figment, clock).await {
        Ok(state) => state,
        Err(reason) => return fail(reason),
    };
    let assets = match gatehouse::http::assets::Assets::from_figment(&figment) {
        Ok(assets) => assets,
        Err(reason) => return fail(reason),
    };
    if let Some(addr) = state.config.metrics_address {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
                tokio::spawn(gatehouse::http::metrics::serve(listener, state.scraper()));
            }
            Err(e) => return fail(format!("cannot listen for metrics on {addr}: {e}")),
        }
    }
    tracing::info!(backend = state.db.backend(), "gatehouse ready");
    let app = gatehouse::demo::mount(gatehouse::http::rocket_with_state(figment, state, assets));
    match app.launch().await {
        Ok(rocket) => {
            gatehouse::close(&rocket).await;
            ExitCode::SUCCESS
        }
        Err(e) => match e.kind() {
            // Rocket 0.5 can return this the moment a signal arrives, when
            // its accept loop ends before its shutdown branch runs: requests
            // are still in flight (they hold the other references). Returning
            // now would drop the runtime and cut them, so wait for them, for
            // at most grace + mercy.
            rocket::error::ErrorKind::Shutdown(rocket, None) => {
                tracing::info!(
                    in_flight = std::sync::Arc::strong_count(rocket) - 1,
                    "shutdown: waiting for in-flight requests"
                );
                let limit =
                    u64::from(rocket.config().shutdown.grace + rocket.config().shutdown.mercy);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit);
                while std::sync::Arc::strong_count(rocket) > 1
                    && std::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                gatehouse::close(rocket.as_ref()).await;
                if std::sync::Arc::strong_count(rocket) > 1 {
                    fail("stopped with requests still running after the shutdown grace period")
                } else {
                    ExitCode::SUCCESS
                }
            }
            _ => fail(format_args!("stopped: {e}")),
        },
    }
}

/// See Cargo.toml: the server allocates on every request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` (mimalloc.h, v2 and v3).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc commits its arenas eagerly on Linux by default: 44 MB peak RSS
/// under the bench's load, against 27 MB with glibc's malloc; committed on
/// demand, as here, it stays at 27 MB (bench/). The option is read when the
/// first arena is mapped, at the first allocation, before `main`: so it is
/// set by a static initializer, which the loader runs before Rust starts.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_OPTIONS: extern "C" fn() = {
    extern "C" fn set() {
        // SAFETY: sets a process-wide integer option; no other thread exists yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
    set
};

fn main() -> ExitCode {
    rocket::execute(run())
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let figment = rocket::Config::figment();
    let json_logs = figment
        .extract_inner::<String>("log_format")
        .is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let serving = matches!(cli.command, None | Some(Command::Serve));
    // Admin commands print their result; logs stay at warnings unless asked.
    let filter = if serving {
        "info,rocket=warn,rocket::launch=info,_=warn,sqlx=warn"
    } else {
        "warn"
    };
    gatehouse::http::logging::init(json_logs, filter);

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return serve().await,
        Command::CheckConfig => {
            let report = gatehouse::config::check(&figment);
            println!("{}", report.text);
            if report.problems.is_empty() {
                Ok("configuration OK".to_owned())
            } else {
                Err(format!(
                    "{} problem(s): {}",
                    report.problems.len(),
                    report.problems.join("; ")
                ))
            }
        }
        Command::HashTime { cost, rounds } => hash_time(&figment, cost, rounds).await,
        Command::Users(cmd) => users(cmd).await,
        Command::Roles(cmd) => roles(cmd).await,
        Command::Tokens(cmd) => tokens(cmd).await,
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(reason) => fail(reason),
    }
}
