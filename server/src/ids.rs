//! Identifiers the server draws: activation and transaction ids, ProductionNumbers.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

/// Readable alphabet without look-alikes (no 0/O, 1/I/L, U).
const READABLE: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Lower-case alphanumerics for opaque ids.
const OPAQUE: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn draw(alphabet: &[u8], n: usize) -> String {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        // The OS RNG failing is unrecoverable for a server that issues secrets.
        if getrandom::fill(&mut buf).is_err() {
            panic!("the operating system's random number generator failed");
        }
        for &b in &buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A new ProductionNumber: `TG-XXXX-XXXX` from a 30-letter readable alphabet
/// (about 39 bits; uniqueness is enforced by the database).
pub fn production_number() -> String {
    let s = draw(READABLE, 8);
    format!("TG-{}-{}", &s[..4], &s[4..])
}

/// A new activation id, `act_` and 20 characters.
pub fn activation_id() -> String {
    format!("act_{}", draw(OPAQUE, 20))
}

/// A new transaction id, `tx_` and 20 characters: the time in milliseconds (9
/// characters, base 36) then 11 random ones. Ids in time order are appended at the end
/// of the primary-key index instead of landing on a random page of it, which keeps the
/// write-ahead log small under ingest (a random id dirtied one more page per row).
pub fn transaction_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut id = String::with_capacity(23);
    id.push_str("tx_");
    let mut digits = [b'0'; 9];
    let mut t = ms;
    for d in digits.iter_mut().rev() {
        *d = OPAQUE[(t % 36) as usize];
        t /= 36;
    }
    id.extend(digits.iter().map(|&b| b as char));
    id.push_str(&draw(OPAQUE, 11));
    id
}

/// A request id for logs: a random prefix drawn once per process and a counter, so
/// ids are unique across processes without a system call per request.
pub fn request_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| draw(OPAQUE, 10));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // `{prefix}-{n:x}`, written into a stack buffer (one allocation: the header value).
    let mut buf = [0u8; 10 + 1 + 16];
    let p = prefix.len().min(10);
    buf[..p].copy_from_slice(&prefix.as_bytes()[..p]);
    buf[p] = b'-';
    let digits = (64 - (n | 1).leading_zeros()).div_ceil(4) as usize;
    for (i, d) in buf[p + 1..p + 1 + digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *d = b"0123456789abcdef"[((n >> shift) & 0xf) as usize];
    }
    // Only [0-9a-z-]: always a valid header value.
    HeaderValue::from_bytes(&buf[..p + 1 + digits])
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let p = production_number();
        assert_eq!(p.len(), 12);
        assert!(p.starts_with("TG-") && p.as_bytes()[7] == b'-');
        assert!(activation_id().starts_with("act_"));
        assert_ne!(transaction_id(), transaction_id());
        let (a, b) = (transaction_id(), transaction_id());
        assert_eq!(a.len(), 23);
        assert!(a[..12] <= b[..12], "time-ordered: {a} then {b}");
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        // The counter in lower-case hex after the per-process prefix.
        let (pa, na) = a.to_str().unwrap().rsplit_once('-').unwrap();
        let (pb, nb) = b.to_str().unwrap().rsplit_once('-').unwrap();
        assert_eq!((pa.len(), pa), (10, pb));
        let (na, nb) = (
            u64::from_str_radix(na, 16).unwrap(),
            u64::from_str_radix(nb, 16).unwrap(),
        );
        assert!(nb > na, "{na:x} then {nb:x}");
        assert_eq!(format!("{na:x}"), a.to_str().unwrap()[11..]);
        assert!(a.to_str().unwrap().len() <= 64);
    }
}
