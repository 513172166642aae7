//! Segment-looking identifiers: 22-character base62 ids for users, groups, workspaces and
//! resources, and stable 27-character policy ids derived from (subject, role).

use rand::Rng;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random base62 id of `len` characters drawn from `rng`.
pub fn base62<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect()
}

/// A 22-character id like Segment's (`sgJDWk3K21k6LE3tLU9nRK`).
pub fn segment_id<R: Rng + ?Sized>(rng: &mut R) -> String {
    base62(rng, 22)
}

/// A stable pseudo policy id for one permission of one subject (27 characters, like
/// `2DrXp6Tx3Lcba6CvSqnwyiX5SDH`). Same inputs → same id.
pub fn policy_id(subject_id: &str, role_id: &str) -> String {
    // Two FNV-1a passes with different offsets give 128 bits, enough for 27 base62 digits' worth of
    // variety in a fake.
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for byte in subject_id.bytes().chain([0u8]).chain(role_id.bytes()) {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    let mut n = (u128::from(a) << 64) | u128::from(b);
    let mut out = Vec::with_capacity(27);
    out.push(b'2');
    while out.len() < 27 {
        out.push(BASE62[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            n = u128::from(a.rotate_left(out.len() as u32)) | 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_base62_of_the_right_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let id = segment_id(&mut rng);
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn policy_ids_are_stable_and_distinct() {
        let a = policy_id("usrAlice", "roleWsOwner");
        assert_eq!(a, policy_id("usrAlice", "roleWsOwner"));
        assert_eq!(a.len(), 27);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, policy_id("usrBob", "roleWsOwner"));
        assert_ne!(a, policy_id("usrAlice", "roleWsMember"));
    }
}
