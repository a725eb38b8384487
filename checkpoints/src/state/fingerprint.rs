//! Schema fingerprints: a stable 64-bit hash (FNV-1a 64) computed at compile
//! time over the names and types of a type's saved fields.
//!
//! `std::hash` is not used: its output is not stable across builds, and
//! fingerprints are compared between the build that wrote an image and the
//! build that reads it.
//!
//! Two constants per type (see [`crate::Stateify`]):
//! - `SHAPE` — how the type contributes to the fingerprint of a type that
//!   contains it. For std types it is structural (`Vec<T>` = `"Vec"` ⊕
//!   `T::SHAPE`); for derived types it is their *name* (and the shapes of
//!   their generic arguments). This is what keeps recursive types
//!   (`Task → Weak<Task>`, `List → Option<Box<List>>`) from making the
//!   compile-time computation loop.
//! - `FINGERPRINT` — the type's own layout: for derived types, every saved
//!   field's name and `SHAPE` (and every variant's name), in declaration
//!   order. Changes *inside* a nested derived type show up in that type's own
//!   entry of the per-type table the saved state carries, not in its
//!   container's fingerprint; the whole-schema fingerprint
//!   ([`crate::state::SavedState::root_fingerprint`]) hashes that table.

/// FNV-1a 64 offset basis.
pub const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues an FNV-1a 64 hash `h` over `bytes`.
pub const fn extend_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(PRIME);
        i += 1;
    }
    h
}

/// Hash of a string (length-prefixed so that `("ab","c")` ≠ `("a","bc")`
/// when strings are chained).
pub const fn hash_str(s: &str) -> u64 {
    combine_str(OFFSET, s)
}

/// Continues `h` with a length-prefixed string.
pub const fn combine_str(h: u64, s: &str) -> u64 {
    let h = combine(h, s.len() as u64);
    extend_bytes(h, s.as_bytes())
}

/// Continues `h` with the 8 little-endian bytes of `v`.
pub const fn combine(h: u64, v: u64) -> u64 {
    extend_bytes(h, &v.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of FNV-1a 64 (from the FNV specification's test
        // suite): "" → offset basis, "a" → 0xaf63dc4c8601ec8c.
        assert_eq!(extend_bytes(OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(extend_bytes(OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(extend_bytes(OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn chained_strings_are_length_prefixed() {
        let ab_c = combine_str(combine_str(OFFSET, "ab"), "c");
        let a_bc = combine_str(combine_str(OFFSET, "a"), "bc");
        assert_ne!(ab_c, a_bc);
    }
}
