//! Time, injected: the core never reads the system clock itself, so tests
//! move time instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, as unix seconds with a fraction.
    fn now(&self) -> f64;

    /// Now, in whole unix seconds.
    fn unix(&self) -> i64 {
        self.now().floor() as i64
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// A clock that starts at the system time and moves only when told to
/// (tests, and anyone simulating time).
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Offset from the system clock, in milliseconds.
    offset_ms: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            offset_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        SystemClock.now() + self.offset_ms.load(Ordering::SeqCst) as f64 / 1000.0
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
