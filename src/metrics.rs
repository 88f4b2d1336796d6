//! Prometheus metrics: one registry per server (no global state, so each
//! test's server counts only its own traffic). The layers record into it
//! where things happen: the request fairing (requests by route and status,
//! with latency), the sign-in flow (outcomes), the limits (hits), the
//! hashing service (slots busy and waiting) and the database (call latency;
//! pool sizes are read at scrape time). This module depends on no other
//! module of the crate, so every layer may use it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// GET, POST, ...
    pub method: &'static str,
    /// The matched route's path template (`/login`, `/static/<path..>`), or
    /// `unmatched`: never the raw path, so the label set stays bounded.
    pub route: String,
    /// The response status code.
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// Seconds: 0.5 ms to 10 s, for requests (a sign-in takes a bcrypt run,
/// a token check microseconds).
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds: 0.1 ms to 2.5 s, for database calls.
const DB_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];
/// Seconds: 1 ms to 5 s, for one bcrypt or argon2 run.
const HASH_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn db_histogram() -> Histogram {
    Histogram::new(DB_BUCKETS)
}

/// Every metric gatehouse exports, and the registry that names them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    signins: Family<OutcomeLabels, Counter>,
    limit_hits: Family<ScopeLabels, Counter>,
    hash_slots: Gauge,
    hash_busy: Gauge,
    hash_waiting: Gauge,
    hash_refused: Counter,
    hash_seconds: Histogram,
    db_calls: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    db_connections: Family<StateLabels, Gauge>,
    db_max_connections: Gauge,
    mails: Family<OutcomeLabels, Counter>,
    outbox_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A sign-in's outcome, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// Signed in.
    Ok,
    /// Unknown email or wrong password.
    InvalidCredentials,
    /// The right password of a deactivated account.
    Disabled,
    /// The right password; a second factor is needed.
    TwoFactorRequired,
    /// Refused by the per-address limit or the account throttle.
    Throttled,
    /// Every hashing slot was busy.
    Busy,
    /// The database failed.
    Unavailable,
    /// The right password, an unconfirmed email.
    Unconfirmed,
    /// Anything else (a bug).
    Error,
}

impl SignIn {
    const ALL: [SignIn; 9] = [
        SignIn::Ok,
        SignIn::InvalidCredentials,
        SignIn::Disabled,
        SignIn::TwoFactorRequired,
        SignIn::Throttled,
        SignIn::Busy,
        SignIn::Unavailable,
        SignIn::Unconfirmed,
        SignIn::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            SignIn::Ok => "ok",
            SignIn::InvalidCredentials => "invalid_credentials",
            SignIn::Disabled => "disabled",
            SignIn::TwoFactorRequired => "two_factor_required",
            SignIn::Throttled => "throttled",
            SignIn::Busy => "busy",
            SignIn::Unavailable => "unavailable",
            SignIn::Unconfirmed => "unconfirmed",
            SignIn::Error => "error",
        }
    }
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Auth requests per client address (per instance).
    Ip,
    /// Password attempts per account (shared through the database).
    Account,
    /// Link mails per address and hour.
    Mail,
}

/// How a database call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbOutcome {
    /// It answered.
    Ok,
    /// It answered with an error.
    Error,
    /// It did not answer within the limit.
    Timeout,
}

/// What became of a mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailOutcome {
    /// Handed to the SMTP server (or written as a file).
    Sent,
    /// Not sent on purpose (no such account, already confirmed).
    Dropped,
    /// Failed; will be tried again.
    Retried,
    /// Failed for good.
    Failed,
}

/// The pool's state at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolState {
    /// Open connections.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pool may open.
    pub max: u32,
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            request_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by method, route and status, with their latency",
            requests.clone(),
        );
        let signins = Family::<OutcomeLabels, Counter>::default();
        registry.register("signins", "Password sign-ins by outcome", signins.clone());
        let limit_hits = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "limit_hits",
            "Requests refused by a limit: scope ip (per client address), account (throttle) or mail (link mails per address)",
            limit_hits.clone(),
        );
        let hash_slots = Gauge::default();
        registry.register(
            "hash_slots",
            "Password hashing slots (concurrent bcrypt runs allowed)",
            hash_slots.clone(),
        );
        let hash_busy = Gauge::default();
        registry.register(
            "hash_slots_busy",
            "Password hashing slots in use",
            hash_busy.clone(),
        );
        let hash_waiting = Gauge::default();
        registry.register(
            "hash_waiting",
            "Requests waiting for a password hashing slot",
            hash_waiting.clone(),
        );
        let hash_refused = Counter::default();
        registry.register(
            "hash_busy_refusals",
            "Requests refused (503) because no hashing slot freed up in time",
            hash_refused.clone(),
        );
        let hash_seconds = Histogram::new(HASH_BUCKETS);
        registry.register(
            "hash_duration_seconds",
            "Time of one password hash or verification, on its thread",
            hash_seconds.clone(),
        );
        let db_calls = Family::<OutcomeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            db_histogram,
        );
        registry.register(
            "db_call_duration_seconds",
            "Database calls by outcome (ok, error, timeout), with their latency",
            db_calls.clone(),
        );
        let db_connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Open database pool connections by state (idle, in_use)",
            db_connections.clone(),
        );
        let db_max_connections = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most connections the pool may open",
            db_max_connections.clone(),
        );
        let mails = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "mails",
            "Outbox mails by outcome (sent, dropped, retried, failed)",
            mails.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "mail_outbox_depth",
            "Mails waiting in the outbox (due or waiting for a retry), as of this instance's last pass",
            outbox_depth.clone(),
        );
        let info = Family::<VersionLabels, Gauge>::default();
        info.get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        registry.register("build_info", "The running gatehouse version", info);
        // Every known series from zero, so a dashboard sees 0, not "no data".
        for outcome in SignIn::ALL {
            let _ = signins.get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            });
        }
        for scope in ["ip", "account", "mail"] {
            let _ = limit_hits.get_or_create(&ScopeLabels { scope });
        }
        for outcome in ["sent", "dropped", "retried", "failed"] {
            let _ = mails.get_or_create(&OutcomeLabels { outcome });
        }
        Metrics {
            registry,
            requests,
            signins,
            limit_hits,
            hash_slots,
            hash_busy,
            hash_waiting,
            hash_refused,
            hash_seconds,
            db_calls,
            db_connections,
            db_max_connections,
            mails,
            outbox_depth,
        }
    }

    /// Counts a mail's outcome.
    pub fn mail(&self, outcome: MailOutcome) {
        let outcome = match outcome {
            MailOutcome::Sent => "sent",
            MailOutcome::Dropped => "dropped",
            MailOutcome::Retried => "retried",
            MailOutcome::Failed => "failed",
        };
        self.mails.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The outbox's depth as last seen.
    pub fn outbox_depth(&self, depth: i64) {
        self.outbox_depth.set(depth);
    }

    /// Counts a served request and its latency.
    pub fn request(&self, labels: &RequestLabels, seconds: f64) {
        self.requests.get_or_create(labels).observe(seconds);
    }

    /// Counts a sign-in's outcome.
    pub fn sign_in(&self, outcome: SignIn) {
        self.signins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts a request a limit refused.
    pub fn limit_hit(&self, limit: Limit) {
        let scope = match limit {
            Limit::Ip => "ip",
            Limit::Account => "account",
            Limit::Mail => "mail",
        };
        self.limit_hits.get_or_create(&ScopeLabels { scope }).inc();
    }

    /// The hashing service's size (set once).
    pub fn hash_slots(&self, slots: usize) {
        self.hash_slots.set(slots as i64);
    }

    /// A request starts (`+1`) or stops (`-1`) waiting for a hashing slot.
    pub fn hash_waiting(&self, delta: i64) {
        self.hash_waiting.inc_by(delta);
    }

    /// A hash job starts (`+1`) or ends (`-1`) on a slot.
    pub fn hash_busy(&self, delta: i64) {
        self.hash_busy.inc_by(delta);
    }

    /// A request was refused because no slot freed up.
    pub fn hash_refused(&self) {
        self.hash_refused.inc();
    }

    /// One hash run took `seconds`.
    pub fn hash_time(&self, seconds: f64) {
        self.hash_seconds.observe(seconds);
    }

    /// A database call ended.
    pub fn db_call(&self, outcome: DbOutcome, seconds: f64) {
        let outcome = match outcome {
            DbOutcome::Ok => "ok",
            DbOutcome::Error => "error",
            DbOutcome::Timeout => "timeout",
        };
        self.db_calls
            .get_or_create(&OutcomeLabels { outcome })
            .observe(seconds);
    }

    /// The exposition, with the pool's state as of now.
    pub fn render(&self, pool: PoolState) -> String {
        let in_use = pool.open.saturating_sub(pool.idle);
        self.db_connections
            .get_or_create(&StateLabels { state: "idle" })
            .set(i64::from(pool.idle));
        self.db_connections
            .get_or_create(&StateLabels { state: "in_use" })
            .set(i64::from(in_use));
        self.db_max_connections.set(i64::from(pool.max));
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition names each metric once, with its type and labels.
    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::new();
        m.request(
            &RequestLabels {
                method: "POST",
                route: "/login".into(),
                status: 200,
            },
            0.003,
        );
        m.sign_in(SignIn::InvalidCredentials);
        m.sign_in(SignIn::InvalidCredentials);
        m.limit_hit(Limit::Account);
        m.hash_waiting(1);
        m.hash_waiting(1);
        m.hash_waiting(-1);
        m.db_call(DbOutcome::Timeout, 1.5);
        let text = m.render(PoolState {
            open: 3,
            idle: 1,
            max: 8,
        });
        for line in [
            "# TYPE gatehouse_http_request_duration_seconds histogram",
            "gatehouse_http_request_duration_seconds_count{method=\"POST\",route=\"/login\",status=\"200\"} 1",
            "gatehouse_http_request_duration_seconds_bucket{le=\"0.005\",method=\"POST\",route=\"/login\",status=\"200\"} 1",
            "gatehouse_http_request_duration_seconds_bucket{le=\"0.0025\",method=\"POST\",route=\"/login\",status=\"200\"} 0",
            "gatehouse_signins_total{outcome=\"invalid_credentials\"} 2",
            "gatehouse_limit_hits_total{scope=\"account\"} 1",
            "gatehouse_limit_hits_total{scope=\"ip\"} 0",
            "gatehouse_signins_total{outcome=\"ok\"} 0",
            "gatehouse_hash_waiting 1",
            "gatehouse_db_call_duration_seconds_count{outcome=\"timeout\"} 1",
            "gatehouse_db_pool_connections{state=\"in_use\"} 2",
            "gatehouse_db_pool_connections{state=\"idle\"} 1",
            "gatehouse_db_pool_max_connections 8",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
