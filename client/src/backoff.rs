//! The retry schedule of the offline queue: exponential backoff with jitter, as a pure
//! function of the attempt number and a random draw, so it can be tested exactly.

use std::time::Duration;

/// Exponential backoff with "equal jitter": before retry `n` (1-based count of failed
/// attempts) the queue waits `d/2 + r·d/2`, where `d = min(max, initial · 2^(n-1))` and
/// `r ∈ [0, 1)` comes from the random draw. Half of the delay is fixed, so retries never
/// bunch at zero; the other half spreads registers that lost the network together.
///
/// ```
/// use std::time::Duration;
/// use tillgate_client::Backoff;
/// let b = Backoff::default(); // 1 s initial, 5 min cap
/// // With the smallest random draw: 0.5 s, 1 s, 2 s, 4 s, ... capped at 150 s.
/// assert_eq!(b.delay(1, 0), Duration::from_millis(500));
/// assert_eq!(b.delay(3, 0), Duration::from_millis(2000));
/// assert_eq!(b.delay(40, 0), Duration::from_secs(150));
/// // With the largest: just under 1 s, 2 s, 4 s, ... capped at 300 s.
/// assert!(b.delay(1, u32::MAX) < Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The full delay before the first retry (before jitter halves its lower bound).
    pub initial: Duration,
    /// The largest full delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failed_attempts` failures (0 means "not failed yet": no delay),
    /// given a uniformly random `random` (any `u32`).
    pub fn delay(&self, failed_attempts: u32, random: u32) -> Duration {
        if failed_attempts == 0 {
            return Duration::ZERO;
        }
        let initial = self.initial.as_millis().min(u128::from(u64::MAX)) as u64;
        let max = self.max.as_millis().min(u128::from(u64::MAX)) as u64;
        let shift = (failed_attempts - 1).min(63);
        let full = initial.saturating_mul(1u64 << shift).min(max);
        let half = full / 2;
        let spread = full - half;
        // `random / 2^32` is in [0, 1); multiply in u128 to avoid overflow.
        let jitter = ((u128::from(spread) * u128::from(random)) >> 32) as u64;
        Duration::from_millis(half + jitter)
    }

    /// The longest wait, in milliseconds: `max`. The queue never waits longer than this
    /// for a retry, whatever a server's `Retry-After` asks, and a next attempt set
    /// further ahead than this (the device's clock was set back since) counts as due.
    pub fn max_ms(&self) -> i64 {
        i64::try_from(self.max.as_millis()).unwrap_or(i64::MAX)
    }

    /// When the next attempt is due (Unix milliseconds), given when the last one failed.
    pub fn next_attempt_at(&self, failed_at_ms: i64, failed_attempts: u32, random: u32) -> i64 {
        let d = self.delay(failed_attempts, random).as_millis();
        failed_at_ms.saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let lows: Vec<u64> = (0..7).map(|n| b.delay(n, 0).as_millis() as u64).collect();
        assert_eq!(lows, [0, 50, 100, 200, 400, 500, 500]);
        let highs: Vec<u64> = (1..7)
            .map(|n| b.delay(n, u32::MAX).as_millis() as u64)
            .collect();
        assert_eq!(highs, [99, 199, 399, 799, 999, 999]);
        // The middle of the range.
        assert_eq!(b.delay(2, 1 << 31), Duration::from_millis(150));
    }

    #[test]
    fn jitter_stays_within_bounds_and_huge_attempts_do_not_overflow() {
        let b = Backoff::default();
        for n in [1u32, 2, 10, 63, 64, 1000, u32::MAX] {
            for r in [0u32, 1, 12345, u32::MAX / 2, u32::MAX] {
                let d = b.delay(n, r);
                assert!(d <= b.max, "{n} {r} {d:?}");
                assert!(d >= b.initial / 2, "{n} {r} {d:?}");
            }
        }
        assert_eq!(b.next_attempt_at(1_000, 1, 0), 1_500);
        assert_eq!(b.max_ms(), 300_000);
        let huge = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::MAX,
        };
        assert_eq!(huge.max_ms(), i64::MAX);
        assert_eq!(b.next_attempt_at(i64::MAX - 1, 5, 0), i64::MAX);
    }
}
