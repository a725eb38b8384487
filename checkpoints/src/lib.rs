//! The checkpoint state runtime and image format of sbx.
//!
//! - [`state`]: the `Stateify` trait that `#[derive(Stateify)]` targets, and
//!   the object-graph encoder/decoder (shared `Arc`s written once, `Weak`
//!   back-pointers, `after_load` hooks, schema fingerprints).
//! - [`image`]: the on-disk/streamed image (manifest, state section,
//!   memory section in checksummed, compressed chunks).
#![forbid(unsafe_code)]

// Lets `#[derive(Stateify)]`'s `::checkpoints::…` paths resolve inside this
// crate's own tests too (unused by the library itself).
#[allow(unused_extern_crates)]
extern crate self as checkpoints;

pub mod state;
pub use state::Stateify;
/// `#[derive(Stateify)]` (same name as the trait, like serde).
pub use stateify_derive::Stateify;
pub mod image;
