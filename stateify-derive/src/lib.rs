//! `#[derive(Stateify)]` — generates checkpoint save/load code for sbx
//! kernel state. See `checkpoints::state` for the runtime it targets and the
//! attributes' semantics.
//!
//! Layout (after serde_derive): [`parse`] turns the input into a checked
//! model, accumulating every error with its span; [`expand`] generates the
//! impl inside `const _: () = { … };` with absolute `::checkpoints` paths.
//!
//! Attributes:
//! - field `#[state(nosave)]`: not written; loaded as `Default::default()`
//!   (a compile error at the field's type if it has no `Default`);
//! - field `#[state(nosave, init = "path::to::fn")]`: loaded as `fn()`;
//! - field `#[state(with = "module")]`: written by `module::save(&T, &mut
//!   Encoder) -> Result<(), SaveError>`, read by `module::load(&mut Decoder)
//!   -> Result<T, LoadError>`; `module::FINGERPRINT: u64` is the field's
//!   schema contribution;
//! - type `#[state(after_load = "method")]`: `fn method(&self)`, run after
//!   the whole graph is loaded;
//! - type `#[state(name = "stable.Name")]`: the schema name, instead of
//!   `module_path!()::Ident` (lets a type move between modules without
//!   invalidating images; must be unique among the types of one graph).
#![forbid(unsafe_code)]

mod expand;
mod parse;

use proc_macro::TokenStream;

/// Derives `checkpoints::Stateify`.
#[proc_macro_derive(Stateify, attributes(state))]
pub fn derive_stateify(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match parse::Container::from_input(&input) {
        Ok(container) => expand::expand(&container).into(),
        Err(errors) => errors.to_compile_error().into(),
    }
}
