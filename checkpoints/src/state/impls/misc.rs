//! `Duration`, paths, OS strings, `PhantomData`.

use std::ffi::OsString;
use std::marker::PhantomData;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use crate::state::fingerprint::hash_str;
use crate::state::{Decoder, Encoder, LoadError, SaveError, Stateify};

/// Seconds (varint) then nanoseconds (varint, < 10⁹).
impl Stateify for Duration {
    const SHAPE: u64 = hash_str("Duration");
    const MIN_SIZE: usize = 2;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "Duration".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_varint(self.as_secs());
        enc.write_varint(u64::from(self.subsec_nanos()));
        Ok(())
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let secs = dec.read_varint()?;
        let nanos = dec.read_varint()?;
        match u32::try_from(nanos) {
            Ok(n) if n < 1_000_000_000 => Ok(Duration::new(secs, n)),
            _ => Err(LoadError::InvalidValue {
                type_name: "Duration",
                reason: "nanoseconds ≥ 10⁹",
            }),
        }
    }
}

/// OS strings are their raw bytes (Unix).
impl Stateify for OsString {
    const SHAPE: u64 = hash_str("OsString");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "OsString".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        let bytes = self.as_bytes();
        enc.write_len(bytes.len());
        enc.write_bytes(bytes);
        Ok(())
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let n = dec.read_len(1)?;
        Ok(OsString::from_vec(dec.read_bytes(n)?.to_vec()))
    }
}

/// Paths are their raw bytes, like [`OsString`].
impl Stateify for PathBuf {
    const SHAPE: u64 = hash_str("OsString");
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "PathBuf".to_owned()
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        let bytes = self.as_os_str().as_bytes();
        enc.write_len(bytes.len());
        enc.write_bytes(bytes);
        Ok(())
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        OsString::load(dec).map(PathBuf::from)
    }
}

impl<T: ?Sized + 'static> Stateify for PhantomData<T> {
    const SHAPE: u64 = hash_str("PhantomData");
    const MIN_SIZE: usize = 0;
    const HAS_HOOKS: bool = false;
    fn type_name() -> String {
        "PhantomData".to_owned()
    }
    fn save(&self, _enc: &mut Encoder) -> Result<(), SaveError> {
        Ok(())
    }
    fn load(_dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        Ok(PhantomData)
    }
}
