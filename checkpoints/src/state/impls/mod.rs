//! `Stateify` for the std types kernel state is built from.
//!
//! Encodings (see `checkpoints/FORMAT.md`): integers and floats as postcard
//! (varints, zig-zag for signed; `usize`/`isize` as `u64`/`i64`), collections
//! as a varint length followed by their elements, byte buffers (`Vec<u8>`,
//! `Box<[u8]>`, `[u8; N]`) as one bulk copy, `Option`/`Result` as a varint
//! tag, shared pointers as object references.

mod collections;
mod maps;
mod misc;
mod primitives;
pub(crate) mod sync;
mod tuples;
