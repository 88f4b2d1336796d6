//! Black-box tests through the real app. One binary, so the suite links once.

mod common;

mod adversarial;
mod process;

mod admin;
mod api;
mod audit;
mod binary;
mod compat;
mod csrf;
mod csrf_routes;
mod deploy;
mod devices;
mod forward_auth;
mod input;
mod introspect;
mod login;
mod mailbox;
mod metrics;
mod migration;
mod openapi;
mod operations;
mod oracle;
mod outage;
mod pages;
mod recovery;
mod register;
mod revoke;
mod roles;
mod scale_out;
mod smtp;
mod startup;
mod transactions;
mod twofactor;
mod twofactor_more;
mod unauthenticated;
mod verify;
