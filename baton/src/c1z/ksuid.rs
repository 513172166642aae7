//! KSUIDs, used as sync ids: 20 bytes (4-byte big-endian seconds since 1400000000 followed by
//! 16 random bytes), base62-encoded to exactly 27 characters (`0-9A-Za-z`, zero-padded).

/// KSUID epoch in Unix seconds (2014-05-13T16:53:20Z).
pub const EPOCH: i64 = 1_400_000_000;
/// Length of the string form.
pub const STRING_LEN: usize = 27;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh KSUID for the current time with 16 random payload bytes.
pub fn new() -> String {
    let now = chrono::Utc::now().timestamp();
    let ts = u32::try_from((now - EPOCH).max(0)).unwrap_or(u32::MAX);
    let payload: [u8; 16] = rand::random();
    from_parts(ts, &payload)
}

/// The KSUID string of the given KSUID-epoch timestamp and payload.
pub fn from_parts(timestamp: u32, payload: &[u8; 16]) -> String {
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&timestamp.to_be_bytes());
    bytes[4..].copy_from_slice(payload);
    encode(&bytes)
}

/// Base62-encodes 20 bytes (a big-endian number) to 27 characters.
pub fn encode(bytes: &[u8; 20]) -> String {
    // Five big-endian 32-bit words; repeated division by 62.
    let mut words: [u32; 5] = std::array::from_fn(|i| {
        u32::from_be_bytes([
            bytes[i * 4],
            bytes[i * 4 + 1],
            bytes[i * 4 + 2],
            bytes[i * 4 + 3],
        ])
    });
    let mut out = [b'0'; STRING_LEN];
    let mut pos = STRING_LEN;
    while words.iter().any(|&w| w != 0) {
        let mut rem: u64 = 0;
        for w in words.iter_mut() {
            let acc = (rem << 32) | u64::from(*w);
            *w = (acc / 62) as u32;
            rem = acc % 62;
        }
        pos -= 1;
        out[pos] = ALPHABET[rem as usize];
    }
    // Every byte is from the ASCII alphabet.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Parses a 27-character KSUID back into its 20 bytes.
pub fn decode(s: &str) -> Option<[u8; 20]> {
    if s.len() != STRING_LEN {
        return None;
    }
    let mut words = [0u32; 5];
    for c in s.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u64;
        let mut carry = digit;
        for w in words.iter_mut().rev() {
            let acc = u64::from(*w) * 62 + carry;
            *w = acc as u32;
            carry = acc >> 32;
        }
        if carry != 0 {
            return None; // larger than 160 bits
        }
    }
    let mut out = [0u8; 20];
    for (i, w) in words.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    Some(out)
}

/// Unix time (seconds) encoded in a KSUID string.
pub fn unix_time(s: &str) -> Option<i64> {
    let bytes = decode(s)?;
    let ts = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some(i64::from(ts) + EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(from_parts(0, &[0; 16]), "000000000000000000000000000");
        assert_eq!(encode(&[0xff; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
        let mut one = [0u8; 20];
        one[19] = 61;
        assert_eq!(encode(&one), "00000000000000000000000000z");
        one[19] = 62;
        assert_eq!(encode(&one), "000000000000000000000000010");
    }

    #[test]
    fn fresh_ksuid_shape_and_time() {
        let before = chrono::Utc::now().timestamp();
        let id = new();
        let after = chrono::Utc::now().timestamp();
        assert_eq!(id.len(), 27);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()));
        let t = unix_time(&id).unwrap();
        assert!(t >= before && t <= after, "{t} not in [{before}, {after}]");
        assert_ne!(new(), id);
    }

    #[test]
    fn round_trip() {
        let payload: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        let s = from_parts(123_456_789, &payload);
        let bytes = decode(&s).unwrap();
        assert_eq!(&bytes[..4], &123_456_789u32.to_be_bytes());
        assert_eq!(&bytes[4..], &payload);
        assert!(decode("zzzzzzzzzzzzzzzzzzzzzzzzzzz").is_none());
        assert!(decode("short").is_none());
        assert!(decode("00000000000000000000000000-").is_none());
    }
}
