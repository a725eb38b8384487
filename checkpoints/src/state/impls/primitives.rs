//! Scalars.

use crate::state::fingerprint::hash_str;
use crate::state::{Decoder, Encoder, LoadError, SaveError, Stateify};

macro_rules! postcard_scalar {
    ($($t:ty => $name:literal, $min:expr;)*) => {$(
        impl Stateify for $t {
            const SHAPE: u64 = hash_str($name);
            const MIN_SIZE: usize = $min;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                enc.serialize(self)
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                dec.deserialize()
            }
        }
    )*};
}

/// Unsigned integers: the postcard varint, written and read directly (the
/// hot path of every state section; `varint` tests pin the equivalence).
macro_rules! varint_unsigned {
    ($($t:ty => $name:literal;)*) => {$(
        impl Stateify for $t {
            const SHAPE: u64 = hash_str($name);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                enc.write_varint(u64::from(*self));
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                <$t>::try_from(dec.read_varint()?).map_err(|_| LoadError::BadVarint)
            }
        }
    )*};
}

/// Signed integers: zig-zag, then the unsigned varint (postcard's encoding).
macro_rules! varint_signed {
    ($($t:ty => $name:literal;)*) => {$(
        impl Stateify for $t {
            const SHAPE: u64 = hash_str($name);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                let v = i64::from(*self);
                enc.write_varint(((v << 1) ^ (v >> 63)) as u64);
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                let z = dec.read_varint()?;
                let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
                <$t>::try_from(v).map_err(|_| LoadError::BadVarint)
            }
        }
    )*};
}

varint_unsigned! {
    u16 => "u16";
    u32 => "u32";
    u64 => "u64";
}

varint_signed! {
    i16 => "i16";
    i32 => "i32";
    i64 => "i64";
}

postcard_scalar! {
    u128 => "u128", 1;
    i8 => "i8", 1;
    i128 => "i128", 1;
    f32 => "f32", 4;
    f64 => "f64", 8;
    bool => "bool", 1;
    char => "char", 1;
}

impl Stateify for u8 {
    const SHAPE: u64 = hash_str("u8");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "u8".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_bytes(&[*self]);
        Ok(())
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        Ok(dec.read_bytes(1)?[0])
    }
    /// Byte buffers are one bulk copy.
    fn save_elems(items: &[Self], enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_bytes(items);
        Ok(())
    }
    fn load_elems(dec: &mut Decoder<'_>, n: usize) -> Result<Vec<Self>, LoadError> {
        Ok(dec.read_bytes(n)?.to_vec())
    }
}

/// `usize`/`isize` are saved as `u64`/`i64` (same shape), so images move
/// between 64-bit builds freely; a value that does not fit this target's
/// type is refused on load.
macro_rules! via_64 {
    ($($t:ty => $wide:ty, $name:literal;)*) => {$(
        impl Stateify for $t {
            const SHAPE: u64 = <$wide as Stateify>::SHAPE;
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                (*self as $wide).save(enc)
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                let v = <$wide as Stateify>::load(dec)?;
                <$t>::try_from(v).map_err(|_| LoadError::InvalidValue {
                    type_name: $name,
                    reason: "out of range",
                })
            }
        }
    )*};
}

via_64! {
    usize => u64, "usize";
    isize => i64, "isize";
}

impl Stateify for () {
    const SHAPE: u64 = hash_str("()");
    const MIN_SIZE: usize = 0;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "()".to_owned()
    }
    fn save(&self, _enc: &mut Encoder) -> Result<(), SaveError> {
        Ok(())
    }
    fn load(_dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        Ok(())
    }
}

/// UTF-8 strings: the length, then the bytes (one shape for both types).
macro_rules! string {
    ($($t:ty => $name:literal;)*) => {$(
        impl Stateify for $t {
            const SHAPE: u64 = hash_str("String");
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                enc.write_len(self.len());
                enc.write_bytes(self.as_bytes());
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                Ok(dec.read_str()?.into())
            }
        }
    )*};
}

string! {
    String => "String";
    Box<str> => "Box<str>";
}

#[cfg(test)]
mod tests {
    use crate::state;

    /// The direct integer encodings are byte-for-byte postcard's.
    #[test]
    fn integers_match_postcard() {
        let v = (
            0u16,
            u16::MAX,
            u32::MAX,
            u64::MAX,
            i16::MIN,
            -1i32,
            i64::MIN,
            i64::MAX,
        );
        let saved = state::save(&v).expect("save");
        let expected = postcard::to_stdvec(&v).expect("postcard");
        assert!(saved.bytes.ends_with(&expected));
        assert_eq!(
            state::load::<(u16, u16, u32, u64, i16, i32, i64, i64)>(&saved).expect("load"),
            v
        );
    }
}
