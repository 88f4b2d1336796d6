//! Attacks, grouped: each test here would fail without the defence it names.

mod credentials;
mod db_faults;
mod input;
mod redirects;
mod sessions;
mod tokens;
