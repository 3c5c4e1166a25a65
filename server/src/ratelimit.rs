//! Per-client-address rate limiting (token buckets), for activation requests and failed
//! authentications. Kept in memory per process: it protects the service, it is not a
//! correctness rule, so several processes behind a load balancer each apply it.
//!
//! An IPv6 client is counted by its /64 network, the smallest block an ISP or a cloud
//! hands out: one host can use any address in it, so a bucket per address would give it
//! an unlimited budget. IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
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

    /// The bucket an address is counted in (see the module doc).
    fn bucket_of(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(network))
                }
            },
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
        let ip = Self::bucket_of(ip);
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
        let ip = Self::bucket_of(ip);
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

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_network() {
        let l = RateLimiter::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.hit(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.hit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).is_ok());
        assert!(
            l.hit(ip("2001:db8:1:2:abcd::7")).is_err(),
            "another address of the same /64 shares the budget"
        );
        assert!(l.check(ip("2001:db8:1:2::99")).is_err());
        assert!(
            l.hit(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 has its own"
        );
        // An IPv4 client seen through a dual-stack socket is its IPv4 address.
        assert!(l.hit(ip("10.0.0.9")).is_ok() && l.hit(ip("::ffff:10.0.0.9")).is_ok());
        assert!(l.hit(ip("10.0.0.9")).is_err());
    }
}
