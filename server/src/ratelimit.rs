//! Per-client-address rate limiting (token buckets), for activation requests and failed
//! authentications (see `auth` for when a token is taken before a credential is checked
//! and when after). Kept in memory per process: it protects the service, it is not a
//! correctness rule, so several processes behind a load balancer each apply it.
//!
//! An IPv6 client is counted by its /64 network, the smallest block an ISP or a cloud
//! hands out: one host can use any address in it, so a bucket per address would give it
//! an unlimited budget. IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses tracked: reaching it drops the buckets that have refilled, then, if
/// still more than nine tenths of it are left, the fullest (see [`RateLimiter::prune`]).
const MAX_TRACKED: usize = 100_000;

/// A token-bucket limiter per client address.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    max_tracked: usize,
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
        Self::tracking(per_minute, MAX_TRACKED)
    }

    fn tracking(per_minute: u32, max_tracked: usize) -> Self {
        RateLimiter {
            per_minute,
            max_tracked: max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Makes room for one more address in a map holding `max_tracked`: drops every bucket
    /// that has refilled (forgetting it changes nothing), then, if more than nine tenths
    /// of the bound are still tracked (addresses still paying for failures, many of them:
    /// an attack from many networks), the fullest of them down to nine tenths. Forgetting
    /// a bucket gives its address a whole budget again, so the least spent ones go; the
    /// next tenth of new addresses then costs no scan. The map never holds more than
    /// `max_tracked`.
    fn prune(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let full = f64::from(self.per_minute);
        let rate = full / 60.0;
        let tokens = |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() * rate;
        map.retain(|_, b| tokens(b) < full);
        let keep = self.max_tracked - self.max_tracked.div_ceil(10);
        if map.len() > keep {
            let mut by_tokens: Vec<(f64, IpAddr)> =
                map.iter().map(|(ip, b)| (tokens(b), *ip)).collect();
            let drop = by_tokens.len() - keep;
            // The `drop` fullest first.
            by_tokens.select_nth_unstable_by(drop - 1, |a, b| b.0.total_cmp(&a.0));
            for (_, ip) in &by_tokens[..drop] {
                map.remove(ip);
            }
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

    /// Takes one token for `ip`; `Err(retry_after_secs)` if none is left. The token is
    /// taken under the limiter's lock, so of any number of callers at once at most as many
    /// as there are tokens succeed: a caller may take a token *before* the work it pays
    /// for and [`give_back`](Self::give_back) it when the work turns out not to count.
    pub fn try_take(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let ip = Self::bucket_of(ip);
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_tracked && !map.contains_key(&ip) {
            self.prune(&mut map, now);
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

    /// Returns a token that [`try_take`](Self::try_take) took for `ip` (the budget never
    /// grows past its size). A bucket no longer tracked was dropped (see
    /// [`prune`](Self::prune)); the address then starts again with a whole budget, so
    /// there is nothing to return to.
    pub fn give_back(&self, ip: IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        let ip = Self::bucket_of(ip);
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get_mut(&ip) {
            self.refill(b, now);
            b.tokens = (b.tokens + 1.0).min(f64::from(self.per_minute));
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
        assert!(l.try_take(a).is_ok() && l.try_take(a).is_ok() && l.try_take(a).is_ok());
        let wait = l.try_take(a).unwrap_err();
        assert!((1..=20).contains(&wait));
        assert!(l.try_take(b).is_ok());
        assert!(RateLimiter::new(0).try_take(a).is_ok());
    }

    #[test]
    fn a_token_given_back_can_be_taken_again_but_the_budget_never_grows() {
        let l = RateLimiter::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        // Giving back to an address never seen (a full budget) changes nothing.
        l.give_back(a);
        l.give_back(a);
        assert!(l.try_take(a).is_ok() && l.try_take(a).is_ok());
        assert!(l.try_take(a).is_err());
        l.give_back(a);
        assert!(l.try_take(a).is_ok(), "the token given back");
        assert!(l.try_take(a).is_err());
        // Returned more often than taken: still no more than the budget.
        for _ in 0..5 {
            l.give_back(a);
        }
        assert!(l.try_take(a).is_ok() && l.try_take(a).is_ok());
        assert!(l.try_take(a).is_err());
        // Disabled: nothing to give back, nothing refused.
        let off = RateLimiter::new(0);
        off.give_back(a);
        assert!(off.try_take(a).is_ok());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_budget() {
        // Every caller reserves before any of them has an answer (nobody gives back):
        // only the budget gets through, however the threads interleave.
        let l = RateLimiter::new(5);
        let a: IpAddr = [10, 0, 0, 1].into();
        let start = std::sync::Barrier::new(32);
        let taken = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    start.wait();
                    if l.try_take(a).is_ok() {
                        taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(taken.into_inner(), 5);
        // Those that succeeded give their tokens back: the budget is whole again, no more.
        for _ in 0..5 {
            l.give_back(a);
        }
        let again = (0..32).filter(|_| l.try_take(a).is_ok()).count();
        assert_eq!(again, 5);
    }

    #[test]
    fn the_addresses_tracked_stay_bounded() {
        let l = RateLimiter::tracking(3, 10);
        let ip = |i: u8| IpAddr::from([10, 0, 1, i]);
        // Ten addresses with part of their budget spent: none has refilled.
        for i in 0..10 {
            l.try_take(ip(i)).unwrap();
            if i < 5 {
                l.try_take(ip(i)).unwrap();
            }
        }
        let tracked = || l.buckets.lock().unwrap().len();
        assert_eq!(tracked(), 10);
        // Another address makes room: the least spent go, down to nine tenths, first.
        l.try_take(ip(10)).unwrap();
        assert_eq!(tracked(), 10);
        // Those spent most are still counted: their third token is their last.
        for i in 0..5 {
            l.try_take(ip(i)).unwrap();
            assert!(l.try_take(ip(i)).is_err(), "address {i}");
        }
        // However many new addresses arrive, the map stays within its bound.
        for i in 11..=60 {
            l.try_take(ip(i)).unwrap();
            assert!(tracked() <= 10);
        }
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_network() {
        let l = RateLimiter::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.try_take(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.try_take(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).is_ok());
        assert!(
            l.try_take(ip("2001:db8:1:2:abcd::7")).is_err(),
            "another address of the same /64 shares the budget"
        );
        // A token given back through another address of the /64 returns to the same budget.
        l.give_back(ip("2001:db8:1:2::99"));
        assert!(l.try_take(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.try_take(ip("2001:db8:1:2::1")).is_err());
        assert!(
            l.try_take(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 has its own"
        );
        // An IPv4 client seen through a dual-stack socket is its IPv4 address.
        assert!(l.try_take(ip("10.0.0.9")).is_ok() && l.try_take(ip("::ffff:10.0.0.9")).is_ok());
        assert!(l.try_take(ip("10.0.0.9")).is_err());
    }
}
