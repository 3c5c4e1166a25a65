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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::db::ActivationRow;

/// A map whose entries expire after a fixed time and which never grows past a bound
/// (when full, expired entries are dropped, and if none were, everything is).
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    map: Mutex<Entries<K, V>>,
}

/// The entries, and how many times the map was cleared: a value read from the database
/// before a [`TtlMap::clear`] must not be stored after it.
#[derive(Debug)]
struct Entries<K, V> {
    generation: u64,
    map: HashMap<K, (Instant, V)>,
}

/// When a value to be cached was read: taken with [`TtlMap::generation`] before the
/// read, handed to [`TtlMap::insert_since`] after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    /// A map keeping entries for `ttl` (zero disables it) and at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Self {
        TtlMap {
            ttl,
            max: max.max(1),
            map: Mutex::new(Entries {
                generation: 0,
                map: HashMap::new(),
            }),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries<K, V>> {
        // A panic while the lock was held left at worst a missing entry: still usable.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let entries = self.entries();
        let (at, v) = entries.map.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    /// Stores `value` for `key`, now.
    pub fn insert(&self, key: K, value: V) {
        let generation = self.generation();
        self.insert_since(generation, key, value);
    }

    /// The current generation: take it before reading a value that may be cached.
    pub fn generation(&self) -> Generation {
        Generation(self.entries().generation)
    }

    /// Stores `value` for `key`, now, unless the map was cleared since `read` was taken:
    /// a value read before a decision (a revocation, a renewal) is never cached after
    /// the decision cleared the map. Returns whether it was stored.
    pub fn insert_since(&self, read: Generation, key: K, value: V) -> bool {
        if self.is_disabled() {
            return false;
        }
        let mut entries = self.entries();
        if entries.generation != read.0 {
            return false;
        }
        let map = &mut entries.map;
        if map.len() >= self.max && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
        true
    }

    /// Forgets everything, and refuses every value read before now
    /// ([`TtlMap::insert_since`]).
    pub fn clear(&self) {
        let mut entries = self.entries();
        entries.map.clear();
        entries.generation = entries.generation.wrapping_add(1);
    }

    /// Forgets the entries `keep` says no to, and refuses every value read before now
    /// ([`TtlMap::insert_since`]), as [`TtlMap::clear`] does for all.
    pub fn forget(&self, keep: impl Fn(&K, &V) -> bool) {
        let mut entries = self.entries();
        entries.map.retain(|k, (_, v)| keep(k, v));
        entries.generation = entries.generation.wrapping_add(1);
    }

    /// How many entries are held (expired ones included).
    pub fn len(&self) -> usize {
        self.entries().map.len()
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
    fn a_value_read_before_a_clear_is_not_cached_after_it() {
        let m: TtlMap<u32, &str> = TtlMap::new(Duration::from_secs(60), 3);
        let before = m.generation();
        // A decision (say, a revocation) clears the map while the read was under way.
        m.clear();
        assert!(!m.insert_since(before, 1, "approved"));
        assert_eq!(m.get(&1), None, "the stale row must not be served");
        let after = m.generation();
        assert!(m.insert_since(after, 1, "approved"));
        assert_eq!(m.get(&1), Some("approved"));
    }

    #[test]
    fn forget_drops_only_what_it_is_told_and_refuses_reads_from_before() {
        let m: TtlMap<u32, &str> = TtlMap::new(Duration::from_secs(60), 3);
        m.insert(1, "a");
        m.insert(2, "b");
        let before = m.generation();
        m.forget(|_, v| *v != "a");
        assert_eq!((m.get(&1), m.get(&2)), (None, Some("b")));
        assert!(!m.insert_since(before, 1, "a"));
        assert!(m.insert_since(m.generation(), 1, "a"));
    }

    #[test]
    fn zero_ttl_disables() {
        let m: TtlMap<u32, u32> = TtlMap::new(Duration::ZERO, 3);
        m.insert(1, 1);
        assert_eq!(m.get(&1), None);
        assert!(m.is_empty());
    }
}
