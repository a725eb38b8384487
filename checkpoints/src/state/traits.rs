//! The [`Stateify`] trait: what `#[derive(Stateify)]` implements and what the
//! encoder/decoder call.

use super::{AfterLoad, Decoder, Encoder, LoadError, SaveError, TypeVisitor};

/// A type whose values can be written into a checkpoint and read back.
///
/// Implement it with `#[derive(Stateify)]` (see the crate docs for the
/// attributes); the impls in this crate cover the std types kernel state is
/// built from. All implementors are `'static`: kernel state holds no
/// borrowed data.
pub trait Stateify: Sized + 'static {
    /// This type's contribution to the fingerprint of a type containing it:
    /// structural for std types, the type's name for derived types (see
    /// [`crate::state::fingerprint`]).
    const SHAPE: u64;
    /// Fingerprint of this type's own saved layout (derived types: field
    /// names and shapes). Equal to `SHAPE` for std types.
    const FINGERPRINT: u64 = Self::SHAPE;
    /// The fewest bytes any value of this type encodes to. Bounds the
    /// element count a collection may claim relative to the remaining input
    /// (no allocation driven by an untrusted length).
    const MIN_SIZE: usize;
    /// Whether `after_load_walk` can reach an `after_load` hook (lets
    /// containers of plain data skip the walk).
    const HAS_HOOKS: bool = true;

    /// Stable, human-readable type name used in the per-type fingerprint
    /// table and the object-type table (derived: `module::path::Name<Args>`).
    fn type_name() -> String;

    /// Registers this type's schema entry and object vtables, then recurses
    /// into the types it contains. Std types only forward to their element
    /// types; derived types register `(type_name, FINGERPRINT)` once.
    fn visit_types(visitor: &mut TypeVisitor) {
        let _ = visitor;
    }

    /// Writes `self`.
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError>;

    /// Reads a value written by [`Stateify::save`].
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError>;

    /// Runs the `after_load` hooks of this value and of the values it owns
    /// (owned values first). Does not follow `Arc`/`Weak`: objects are walked
    /// separately, in dependency order.
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        let _ = hooks;
    }

    /// Writes a run of elements (no length). Overridden for `u8` to write in
    /// bulk.
    #[doc(hidden)]
    fn save_elems(items: &[Self], enc: &mut Encoder) -> Result<(), SaveError> {
        for item in items {
            item.save(enc)?;
        }
        Ok(())
    }

    /// Reads `n` elements written by [`Stateify::save_elems`]; `n` has
    /// already been checked against the remaining input. Overridden for `u8`
    /// to read in bulk.
    #[doc(hidden)]
    fn load_elems(dec: &mut Decoder<'_>, n: usize) -> Result<Vec<Self>, LoadError> {
        let mut v = Vec::with_capacity(dec.capacity_for::<Self>(n));
        for _ in 0..n {
            v.push(Self::load(dec)?);
        }
        Ok(v)
    }
}
