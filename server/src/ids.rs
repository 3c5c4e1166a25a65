//! Identifiers the server draws: activation and transaction ids, ProductionNumbers.

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

/// A new transaction id, `tx_` and 20 characters.
pub fn transaction_id() -> String {
    format!("tx_{}", draw(OPAQUE, 20))
}

/// A request id for logs, 16 characters.
pub fn request_id() -> String {
    draw(OPAQUE, 16)
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
    }
}
