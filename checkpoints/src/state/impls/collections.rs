//! Sequences, boxes, `Option` and `Result`.

use std::collections::VecDeque;

use crate::state::fingerprint::{combine, hash_str};
use crate::state::{AfterLoad, Decoder, Encoder, LoadError, SaveError, Stateify, TypeVisitor};

impl<T: Stateify> Stateify for Vec<T> {
    const SHAPE: u64 = combine(hash_str("Vec"), T::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("Vec<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_len_of::<T>(self.len())?;
        T::save_elems(self, enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let n = dec.read_len_of::<T>()?;
        T::load_elems(dec, n)
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.iter().for_each(|x| x.after_load_walk(hooks));
        }
    }
}

impl<T: Stateify> Stateify for VecDeque<T> {
    const SHAPE: u64 = combine(hash_str("VecDeque"), T::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("VecDeque<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_len_of::<T>(self.len())?;
        let (a, b) = self.as_slices();
        T::save_elems(a, enc)?;
        T::save_elems(b, enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let n = dec.read_len_of::<T>()?;
        Ok(T::load_elems(dec, n)?.into())
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.iter().for_each(|x| x.after_load_walk(hooks));
        }
    }
}

/// `Box<T>` is transparent: same bytes and shape as `T`.
impl<T: Stateify> Stateify for Box<T> {
    const SHAPE: u64 = T::SHAPE;
    const MIN_SIZE: usize = T::MIN_SIZE;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("Box<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        T::save(self, enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        T::load(dec).map(Box::new)
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        T::after_load_walk(self, hooks);
    }
}

/// `Box<[T]>` is saved like `Vec<T>` (bulk for bytes).
impl<T: Stateify> Stateify for Box<[T]> {
    const SHAPE: u64 = combine(hash_str("Vec"), T::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("Box<[{}]>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_len_of::<T>(self.len())?;
        T::save_elems(self, enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let n = dec.read_len_of::<T>()?;
        Ok(T::load_elems(dec, n)?.into_boxed_slice())
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.iter().for_each(|x| x.after_load_walk(hooks));
        }
    }
}

/// Arrays have no length prefix.
impl<T: Stateify, const N: usize> Stateify for [T; N] {
    const SHAPE: u64 = combine(combine(hash_str("Array"), N as u64), T::SHAPE);
    const MIN_SIZE: usize = N * T::MIN_SIZE;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("[{}; {}]", T::type_name(), N)
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        T::save_elems(self, enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        if N.saturating_mul(T::MIN_SIZE) > dec.remaining() {
            return Err(LoadError::Truncated);
        }
        let v = T::load_elems(dec, N)?;
        <[T; N]>::try_from(v).map_err(|_| LoadError::InvalidValue {
            type_name: "array",
            reason: "element count differs from the array length",
        })
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.iter().for_each(|x| x.after_load_walk(hooks));
        }
    }
}

impl<T: Stateify> Stateify for Option<T> {
    const SHAPE: u64 = combine(hash_str("Option"), T::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("Option<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        match self {
            None => {
                enc.write_varint(0);
                Ok(())
            }
            Some(x) => {
                enc.write_varint(1);
                x.save(enc)
            }
        }
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        match dec.read_varint()? {
            0 => Ok(None),
            1 => T::load(dec).map(Some),
            tag => Err(LoadError::BadTag {
                type_name: "Option",
                tag,
            }),
        }
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if let Some(x) = self {
            x.after_load_walk(hooks);
        }
    }
}

impl<T: Stateify, E: Stateify> Stateify for Result<T, E> {
    const SHAPE: u64 = combine(combine(hash_str("Result"), T::SHAPE), E::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS || E::HAS_HOOKS;
    fn type_name() -> String {
        format!("Result<{}, {}>", T::type_name(), E::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
        E::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        match self {
            Ok(x) => {
                enc.write_varint(0);
                x.save(enc)
            }
            Err(e) => {
                enc.write_varint(1);
                e.save(enc)
            }
        }
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        match dec.read_varint()? {
            0 => T::load(dec).map(Ok),
            1 => E::load(dec).map(Err),
            tag => Err(LoadError::BadTag {
                type_name: "Result",
                tag,
            }),
        }
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        match self {
            Ok(x) => x.after_load_walk(hooks),
            Err(e) => e.after_load_walk(hooks),
        }
    }
}
