//! Short-lived, bounded caches that spare the database on the hot paths: which
//! registration an API key belongs to, and the signed server time of a register.
//!
//! Only what can be re-derived is cached, and only briefly: an entry older than the
//! configured TTL is never used. A decision made through this process (approve, reject,
//! revoke, renewal) clears the cache at once; a decision made through another process
//! sharing the database (a second server on PostgreSQL, the admin CLI) is seen within
//! the TTL. Registrations that are not approved are never cached, so an approval is seen
//! by every process at the next request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::ActivationRow;

/// A map whose entries expire after a fixed time and which never grows past a bound
/// (when full, expired entries are dropped, and if none were, everything is).
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    /// A map keeping entries for `ttl` (zero disables it) and at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Self {
        TtlMap {
            ttl,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the map is switched off (TTL zero).
    pub fn is_disabled(&self) -> bool {
        self.ttl.is_zero()
    }

    /// The value for `key` if it was stored less than the TTL ago.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if self.is_disabled() {
            return None;
        }
        let map = self.map.lock().ok()?;
        let (at, v) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    /// Stores `value` for `key`, now.
    pub fn insert(&self, key: K, value: V) {
        if self.is_disabled() {
            return;
        }
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= self.max && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Forgets everything.
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }

    /// How many entries are held (expired ones included).
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an API-key lookup found, by the key's SHA-256: the approved registration the
/// key belongs to.
pub type KeyCache = TtlMap<[u8; 32], Arc<ActivationRow>>;

/// The signed server time (`signedTime` of the handshake) of a register for one second,
/// and the whole handshake answer built with it. Ed25519 signatures are deterministic,
/// so a hit is byte for byte what signing again would give.
#[derive(Debug, Clone)]
pub struct SignedTime {
    /// The second the timestamp states.
    pub iat: i64,
    /// The key id that signed it.
    pub kid: Arc<str>,
    /// The JWS.
    pub jws: Arc<str>,
    /// The JSON answer of a handshake without nonce or staff login in that second, and
    /// the registration it was built from: reused only for that same registration
    /// (the same entry of the key cache), so any change to it builds a new answer.
    pub answer: Option<(Arc<ActivationRow>, axum::body::Bytes)>,
}

/// [`SignedTime`] by ProductionNumber.
pub type SignedTimeCache = TtlMap<String, SignedTime>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let m: TtlMap<u32, u32> = TtlMap::new(Duration::from_millis(50), 3);
        m.insert(1, 10);
        assert_eq!(m.get(&1), Some(10));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.get(&1), None, "an expired entry is not used");
        for k in 0..10 {
            m.insert(k, k);
            assert!(m.len() <= 3);
        }
        assert_eq!(m.get(&9), Some(9), "the newest entry is kept");
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn zero_ttl_disables() {
        let m: TtlMap<u32, u32> = TtlMap::new(Duration::ZERO, 3);
        m.insert(1, 1);
        assert_eq!(m.get(&1), None);
        assert!(m.is_empty());
    }
}
