//! Passwords the Flask-Security-Too way: NFKD, HMAC-SHA512 pre-hash, bcrypt.
//!
//! All hashing goes through [`Hasher`], which runs bcrypt on its own threads
//! behind a bounded number of slots. When every slot stays busy past the
//! admission timeout the caller gets [`HashError::Busy`] (a 503 with
//! Retry-After) instead of joining an unbounded queue.
//!
//! The hashing threads run at a lower OS priority (nice 10): a flood of
//! sign-ins uses every idle cycle, but token-authenticated requests, which
//! need microseconds of CPU, are never queued behind hundreds of
//! milliseconds of bcrypt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha512;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

use crate::metrics::Metrics;

/// Shortest password accepted at register and change (characters, after NFKD).
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted anywhere (characters, after NFKD). Longer ones
/// fail before any hashing: no account can have one.
pub const MAX_LENGTH: usize = 128;
/// bcrypt reads at most 72 bytes; FS feeds it the first 72 of the 88-char pre-hash.
const BCRYPT_INPUT_LEN: usize = 72;

/// NFKD-normalises a password, as FS does before hashing or length checks.
pub fn normalize(password: &str) -> String {
    password.nfkd().collect()
}

/// Length of a normalised password in characters, as FS counts it.
pub fn char_len(normalized: &str) -> usize {
    normalized.chars().count()
}

/// What is wrong with a new password (register, change, admin), by FS's
/// rules and messages; `None` when it may be used.
pub fn new_password_problem(normalized: &str) -> Option<&'static str> {
    use super::msg;
    match char_len(normalized) {
        0 => Some(msg::PASSWORD_MISSING),
        n if n < MIN_LENGTH => Some(msg::SHORT_PASSWORD),
        n if n > MAX_LENGTH => Some(msg::LONG_PASSWORD),
        _ => None,
    }
}

/// FS pre-hash: `base64(HMAC-SHA512(key = password_salt, msg = password))`.
pub fn prehash(salt: &SecretString, normalized: &str) -> String {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(salt.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(normalized.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn bcrypt_input(prehashed: &str) -> &[u8] {
    let bytes = prehashed.as_bytes();
    &bytes[..bytes.len().min(BCRYPT_INPUT_LEN)]
}

/// Why a hash could not be computed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy past the admission timeout.
    #[error("all password hashing slots are busy")]
    Busy,
    /// bcrypt itself failed (bad cost, or a blocking task died).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// Nice value of the hashing threads (0 is normal, 19 the lowest).
const HASH_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux: nice is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, HASH_NICE);
    }
}

/// Starts `n` low-priority hashing threads fed by one channel.
fn start_workers(n: usize) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("gatehouse-hash-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    match job {
                        Ok(job) => job(),
                        Err(()) => return,
                    }
                }
            })
            .expect("a hashing thread starts");
    }
    tx
}

/// Counts a caller waiting for a slot while it lives (also when the
/// caller's future is dropped mid-wait).
struct Waiting<'a>(Option<&'a Metrics>);

impl<'a> Waiting<'a> {
    fn new(metrics: Option<&'a Metrics>) -> Self {
        if let Some(m) = metrics {
            m.hash_waiting(1);
        }
        Waiting(metrics)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.hash_waiting(-1);
        }
    }
}

/// The bounded password hashing service, shared as Rocket state.
pub struct Hasher {
    salt: SecretString,
    cost: u32,
    slots: Arc<Semaphore>,
    workers: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
    admission: Duration,
    /// A hash of a random password at the configured cost: unknown users are
    /// checked against it so that they cost exactly one hash, like known ones.
    dummy: String,
    count: AtomicU64,
    /// Seconds one verification takes, by kind of stored hash (see
    /// [`hash_kind`]), as a moving average: failed checks are padded to the
    /// slowest, so the time of a refusal does not tell which kind of hash,
    /// if any, the account has.
    timings: std::sync::Mutex<std::collections::HashMap<String, f64>>,
    /// Slots busy and waiting, refusals and run times, once attached.
    metrics: Option<Arc<Metrics>>,
}

/// Kinds of stored hash remembered for timing (there are only a few in
/// practice: bcrypt costs, argon2 parameter sets).
const MAX_KINDS: usize = 64;

/// What decides how long verifying against `stored` takes: a bcrypt hash's
/// cost (`$2b$12$`), an argon2 hash's parameters (up to its salt).
pub fn hash_kind(stored: &str) -> Option<String> {
    match Scheme::of(stored) {
        Scheme::Bcrypt { .. } => stored.get(..7).map(str::to_owned),
        Scheme::Argon2 => {
            let end = stored.match_indices('$').nth(3)?.0;
            Some(stored[..end].to_owned())
        }
        Scheme::Unsupported => None,
    }
}

impl Hasher {
    /// Builds the service; computes the dummy hash once (one bcrypt run).
    pub fn new(
        salt: SecretString,
        cost: u32,
        slots: usize,
        admission: Duration,
    ) -> Result<Self, HashError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| HashError::Internal(e.to_string()))?;
        let dummy = bcrypt::hash(STANDARD.encode(random), cost)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        Ok(Hasher {
            salt,
            cost,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            workers: std::sync::Mutex::new(start_workers(slots.max(1))),
            admission,
            dummy,
            count: AtomicU64::new(0),
            timings: Default::default(),
            metrics: None,
        })
    }

    /// This service counting its slots and runs in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.hash_slots(self.slots.available_permits());
        self.metrics = Some(metrics);
        self
    }

    /// How many bcrypt computations this service has run (hash or verify).
    /// Tests use it to prove "exactly one hash per attempt".
    pub fn hash_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Runs `job` on a hashing thread once a slot is free. There are as many
    /// threads as slots, so an admitted job starts at once.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let metrics = self.metrics.clone();
        let waiting = Waiting::new(metrics.as_deref());
        let permit = tokio::time::timeout(self.admission, self.slots.clone().acquire_owned()).await;
        drop(waiting);
        let Ok(Ok(permit)) = permit else {
            if let Some(m) = &metrics {
                m.hash_refused();
            }
            return Err(HashError::Busy);
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &metrics {
            m.hash_busy(1);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task: Job = Box::new(move || {
            let start = std::time::Instant::now();
            let result = job();
            if let Some(m) = &metrics {
                m.hash_time(start.elapsed().as_secs_f64());
                m.hash_busy(-1);
            }
            // Free the slot before the caller can see the result: a
            // low-priority thread may be preempted between the two, and the
            // caller's next request must find the slot free.
            drop(permit);
            let _ = tx.send(result);
        });
        self.workers
            .lock()
            .map_err(|_| HashError::Internal("hashing threads poisoned".into()))?
            .send(task)
            .map_err(|_| HashError::Internal("hashing threads stopped".into()))?;
        rx.await
            .map_err(|_| HashError::Internal("a hashing job died".into()))?
    }

    /// Checks `s` against a `hash_data` hash from a link (SHA-256-crypt; FS
    /// uses 535,000 rounds), on a hashing thread.
    pub async fn verify_link_hash(&self, hash: String, s: String) -> Result<bool, HashError> {
        self.cpu(move || super::links::verify_hash(&hash, &s)).await
    }

    /// Runs other deliberately slow work (key derivation) on the hashing
    /// threads, within the same bounded slots as password hashing.
    pub async fn cpu<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        self.run(move || Ok(job())).await
    }

    /// Hashes a normalised password for storage (`$2b$`, configured cost).
    pub async fn hash(&self, normalized: &str) -> Result<String, HashError> {
        let pre = prehash(&self.salt, normalized);
        let cost = self.cost;
        self.run(move || {
            bcrypt::hash(bcrypt_input(&pre), cost).map_err(|e| HashError::Internal(e.to_string()))
        })
        .await
    }

    /// Checks a normalised password against a stored hash. `None` (unknown
    /// user, or a user without a password) and unsupported schemes (plaintext,
    /// pbkdf2, …) check against the dummy hash and answer false, at the same
    /// cost as a real check.
    pub async fn verify(&self, normalized: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let pre = prehash(&self.salt, normalized);
        let scheme = stored.map_or(Scheme::Unsupported, Scheme::of);
        let hash = match scheme {
            Scheme::Bcrypt { .. } | Scheme::Argon2 => stored.unwrap_or_default().to_owned(),
            Scheme::Unsupported => self.dummy.clone(),
        };
        let kind = hash_kind(&hash);
        let (matched, took) = self
            .run(move || {
                let start = std::time::Instant::now();
                let matched = match scheme {
                    // FS feeds argon2 the whole 88-character pre-hash.
                    Scheme::Argon2 => verify_argon2(&pre, &hash),
                    _ => bcrypt::verify(bcrypt_input(&pre), &hash).unwrap_or(false),
                };
                Ok((matched, start.elapsed().as_secs_f64()))
            })
            .await?;
        let slowest = self.record(kind, took);
        let ok = scheme != Scheme::Unsupported && matched;
        if !ok && slowest > took {
            // A refusal takes as long as the slowest kind of hash: an
            // unknown email (the dummy), a fast legacy hash and a slow one
            // all look alike from outside.
            tokio::time::sleep(Duration::from_secs_f64(slowest - took)).await;
        }
        Ok(ok)
    }

    /// Records how long a verification of `kind` took; returns the slowest
    /// kind's average.
    fn record(&self, kind: Option<String>, took: f64) -> f64 {
        let Ok(mut timings) = self.timings.lock() else {
            return took;
        };
        if let Some(kind) = kind {
            if timings.len() < MAX_KINDS || timings.contains_key(&kind) {
                let avg = timings.entry(kind).or_insert(took);
                // A moving average: one hiccup of the machine does not slow
                // every later refusal.
                *avg = 0.8 * *avg + 0.2 * took;
            }
        }
        timings.values().copied().fold(took, f64::max)
    }

    /// Measures the kinds of hash an account may have before the first
    /// sign-in does (the dummy, and one sample of each kind stored), so
    /// that even the first refusal for a slow legacy hash takes no longer
    /// than one for an unknown email.
    pub async fn calibrate(&self, samples: &[String]) -> Result<(), HashError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| HashError::Internal(e.to_string()))?;
        let wrong = STANDARD.encode(random);
        self.verify(&wrong, None).await?;
        let mut seen = std::collections::HashSet::new();
        for sample in samples {
            if let Some(kind) = hash_kind(sample) {
                if seen.insert(kind) && seen.len() <= MAX_KINDS {
                    self.verify(&wrong, Some(sample)).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether a stored hash should be replaced by one of the configured
    /// kind after a successful sign-in: argon2 (FS 5's default), or bcrypt
    /// below the configured cost.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        match Scheme::of(stored) {
            Scheme::Bcrypt { cost } => cost < self.cost,
            Scheme::Argon2 => true,
            Scheme::Unsupported => false,
        }
    }
}

/// The stored hash schemes gatehouse knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$2a$`, `$2b$`, `$2y$` with a cost.
    Bcrypt {
        /// Work factor.
        cost: u32,
    },
    /// `$argon2id$` / `$argon2i$` / `$argon2d$` (PHC string, as passlib writes it).
    Argon2,
    /// Anything else: plaintext, pbkdf2, sha-crypt, … Never accepted.
    Unsupported,
}

impl Scheme {
    /// Recognises a stored hash.
    pub fn of(stored: &str) -> Scheme {
        let bcrypt = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p));
        if bcrypt && stored.len() == 60 {
            match stored[4..6].parse() {
                Ok(cost) => Scheme::Bcrypt { cost },
                Err(_) => Scheme::Unsupported,
            }
        } else if stored.starts_with("$argon2") {
            Scheme::Argon2
        } else {
            Scheme::Unsupported
        }
    }
}

fn verify_argon2(prehashed: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(prehashed.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfkd_and_length() {
        // U+FB01 (ﬁ ligature) decomposes to "fi" under NFKD.
        assert_eq!(normalize("\u{FB01}"), "fi");
        assert_eq!(char_len(&normalize("é")), 2); // e + combining acute
    }

    #[test]
    fn bcrypt_input_is_first_72_bytes() {
        let pre = prehash(&SecretString::from("really super secret"), "password");
        assert_eq!(pre.len(), 88);
        assert_eq!(bcrypt_input(&pre).len(), 72);
    }

    #[tokio::test]
    async fn dummy_verify_is_false_and_counted() {
        let h = Hasher::new(SecretString::from("s"), 4, 2, Duration::from_secs(5)).unwrap();
        assert!(!h.verify("whatever", None).await.unwrap());
        assert!(!h.verify("whatever", Some("plaintext")).await.unwrap());
        assert_eq!(h.hash_count(), 2);
        let stored = h.hash("whatever").await.unwrap();
        assert!(stored.starts_with("$2b$04$"));
        assert!(h.verify("whatever", Some(&stored)).await.unwrap());
        assert!(!h.verify("whatevex", Some(&stored)).await.unwrap());
        assert_eq!(h.hash_count(), 5);
    }

    #[test]
    fn schemes() {
        let b = "$2b$12$2YDlblqkc0g8wk.gaC9oiu.mebSBGwtA55Rm2hEreDeMTGV29dUpy";
        assert_eq!(Scheme::of(b), Scheme::Bcrypt { cost: 12 });
        assert_eq!(
            Scheme::of("$argon2id$v=19$m=65536,t=3,p=4$abc$def"),
            Scheme::Argon2
        );
        for other in [
            "password",
            "",
            "$pbkdf2-sha512$25000$x$y",
            "$5$rounds=535000$x$y",
            "$2b$12$short",
        ] {
            assert_eq!(Scheme::of(other), Scheme::Unsupported, "{other}");
        }
    }

    #[tokio::test]
    async fn full_slots_answer_busy() {
        let h = Arc::new(
            Hasher::new(SecretString::from("s"), 4, 1, Duration::from_millis(50)).unwrap(),
        );
        let _held = h.slots.clone().acquire_owned().await.unwrap();
        assert!(matches!(h.hash("password1").await, Err(HashError::Busy)));
    }
}
