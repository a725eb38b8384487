//! The checkpoint state runtime and image format of sbx.
//!
//! - [`state`]: the `Stateify` trait that `#[derive(Stateify)]` targets, and
//!   the object-graph encoder/decoder (shared `Arc`s written once, `Weak`
//!   back-pointers, `after_load` hooks, schema fingerprints).
//! - [`image`]: the on-disk/streamed image (manifest, state section,
//!   memory section in checksummed, compressed chunks).
#![forbid(unsafe_code)]
pub mod image;
