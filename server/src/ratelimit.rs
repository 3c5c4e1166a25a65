//! Per-client-address rate limiting (token buckets), for activation requests and failed
//! authentications. Kept in memory per process: it protects the service, it is not a
//! correctness rule, so several processes behind a load balancer each apply it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses tracked before idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

/// A token-bucket limiter per client address.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Allows `per_minute` events per address per minute, in bursts of as many.
    /// Zero disables the limit.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.per_minute) / 60.0;
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.per_minute));
        b.at = now;
    }

    /// Whether `ip` still has budget left, without spending it. When not, the seconds
    /// until it has.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = map.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait_secs(b.tokens))
        }
    }

    /// Spends one token for `ip`; `Err(retry_after_secs)` if none is left.
    pub fn hit(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let full = f64::from(self.per_minute);
            let per_minute = self.per_minute;
            map.retain(|_, b| {
                let rate = f64::from(per_minute) / 60.0;
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate < full
            });
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: f64::from(self.per_minute),
            at: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait_secs(b.tokens))
        }
    }

    fn wait_secs(&self, tokens: f64) -> u64 {
        let rate = f64::from(self.per_minute) / 60.0;
        ((1.0 - tokens) / rate).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_bursts_per_address() {
        let l = RateLimiter::new(3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(l.hit(a).is_ok() && l.hit(a).is_ok() && l.hit(a).is_ok());
        assert!(l.check(a).is_err());
        let wait = l.hit(a).unwrap_err();
        assert!((1..=20).contains(&wait));
        assert!(l.hit(b).is_ok());
        assert!(RateLimiter::new(0).hit(a).is_ok());
    }
}
