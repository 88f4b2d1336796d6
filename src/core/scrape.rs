//! Who may read the metrics, and what they read: the rule for both places
//! `/metrics` can be served (the main port, or its own listener).

use std::sync::Arc;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Security;
use crate::db::Db;
use crate::metrics::Metrics;

/// Reads the metrics for a scrape that proved itself.
#[derive(Clone)]
pub struct Scraper {
    metrics: Arc<Metrics>,
    db: Db,
    /// SHA-256 of the configured token: compared in constant time, and the
    /// comparison does not depend on the presented token's length.
    token: Option<[u8; 32]>,
}

impl Scraper {
    /// Whether a scrape presenting `bearer` (the `Authorization: Bearer`
    /// value) may read: always when no token is configured.
    pub fn allowed(&self, bearer: Option<&str>) -> bool {
        match (&self.token, bearer) {
            (None, _) => true,
            (Some(want), Some(got)) => {
                let got: [u8; 32] = Sha256::digest(got.as_bytes()).into();
                bool::from(want.ct_eq(&got))
            }
            (Some(_), None) => false,
        }
    }

    /// The exposition, with the pool's state as of now.
    pub fn render(&self) -> String {
        self.metrics.render(self.db.pool_state())
    }
}

impl Security {
    /// The scrape rule and reader for `/metrics`.
    pub fn scraper(&self) -> Scraper {
        Scraper {
            metrics: Arc::clone(&self.metrics),
            db: self.db.clone(),
            token: self
                .config
                .metrics_token
                .get()
                .map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
        }
    }

    /// Whether the main port serves `/metrics`: only behind a token, and
    /// only when there is no separate metrics listener.
    pub fn metrics_on_main_port(&self) -> bool {
        self.config.metrics_address.is_none() && self.config.metrics_token.get().is_some()
    }
}
