//! gatehouse: an authentication and session server that speaks
//! Flask-Security-Too's wire format, on Rocket.
//!
//! Layers, each using only those below it: [`config`] -> [`db`] ->
//! [`core`] (the auth flows, no Rocket types) -> [`http`] (guards, thin
//! handlers, the error mapping, templates). [`rocket`] builds a ready app
//! from a Figment; the pieces can also be attached to another Rocket app.
//! The tutorial's demo API lives in [`demo`], behind the `demo` feature.

#![warn(missing_docs)]

pub mod config;
pub mod core;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod http;
pub mod mail;
pub mod metrics;

pub use crate::core::Security;
pub use http::{build_state, close, rocket, rocket_with_clock};
