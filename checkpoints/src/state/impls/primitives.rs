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

/// `usize` is saved as `u64`, so images move between 64-bit builds freely;
/// a value that does not fit this target's `usize` is refused on load.
impl Stateify for usize {
    const SHAPE: u64 = hash_str("u64");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "usize".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        (*self as u64).save(enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let v = u64::load(dec)?;
        usize::try_from(v).map_err(|_| LoadError::InvalidValue {
            type_name: "usize",
            reason: "out of range",
        })
    }
}

/// `isize` is saved as `i64` (see `usize`).
impl Stateify for isize {
    const SHAPE: u64 = hash_str("i64");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "isize".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        (*self as i64).save(enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let v = i64::load(dec)?;
        isize::try_from(v).map_err(|_| LoadError::InvalidValue {
            type_name: "isize",
            reason: "out of range",
        })
    }
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

impl Stateify for String {
    const SHAPE: u64 = hash_str("String");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "String".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_len(self.len());
        enc.write_bytes(self.as_bytes());
        Ok(())
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        Ok(dec.read_str()?.to_owned())
    }
}

impl Stateify for Box<str> {
    const SHAPE: u64 = hash_str("String");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "Box<str>".to_owned()
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
