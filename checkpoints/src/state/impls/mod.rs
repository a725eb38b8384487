//! `Stateify` for the std types kernel state is built from.
//!
//! Encodings (see `checkpoints/FORMAT.md`): integers and floats as postcard
//! (varints, zig-zag for signed; `usize`/`isize` as `u64`/`i64`), collections
//! as a varint length followed by their elements, byte buffers (`Vec<u8>`,
//! `Box<[u8]>`, `[u8; N]`) as one bulk copy, `Option`/`Result` as a varint
//! tag (also `OnceLock`), shared pointers as object references.
//!
//! Not covered: trait objects (`Box<dyn T>`, `Arc<dyn T>`: use an enum of
//! the implementations, or a `with` module), `Rc`/`RefCell` (kernel state
//! is shared across threads), unsized pointees (`Arc<[T]>`, `Arc<str>`).

mod collections;
mod maps;
mod misc;
mod primitives;
pub(crate) mod sync;
mod tuples;
